# Shared by scripts/demo and scripts/test: a project virtualenv with the given extras.
# Usage: [PRE_INSTALL="pkg==1.0"] source scripts/_env.sh EXTRAS   (e.g. "litellm,plot")
# PRE_INSTALL is installed first (the test script pins the CPU build of torch that way).
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
stamp="$VENV/.conduit-installed-$1"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  if [ -n "${PRE_INSTALL:-}" ]; then python -m pip install --quiet ${PRE_INSTALL}; fi
  python -m pip install --quiet -e ".[$1]"
  touch "$stamp"
fi
