# Shared by scripts/demo and scripts/test: a project virtualenv with the given extras.
# Usage: [PRE_INSTALL="pkg==1.0"] [PINS="pkg==1.0"] [CONDUIT_VENV=DIR] source scripts/_env.sh EXTRAS
#        (e.g. "litellm,plot")
# PRE_INSTALL is installed first (the test script pins the CPU build of torch that way);
# PINS are resolved together with the project (the test script's second virtualenv,
# .venv-litellm-min, pins the lowest supported LiteLLM that way). pip's cache is shared.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "Conduit needs Python 3.11 or newer" >&2; exit 1; }
VENV="${CONDUIT_VENV:-$ROOT/.venv}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.conduit-installed-$1${PINS:+-${PINS// /-}}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  if [ -n "${PRE_INSTALL:-}" ]; then python -m pip install --quiet ${PRE_INSTALL}; fi
  python -m pip install --quiet -e ".[$1]" ${PINS:-}
  touch "$stamp"
fi
