"""Settings read from the environment, in one place.

``CONDUIT_STATE_URL`` chooses the state store for ``conduit state`` and for
anything that asks for the default store; without it, state lives in an SQLite
file in the user's data directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["STATE_URL_ENV", "data_dir", "default_state_url", "state_url"]

STATE_URL_ENV = "CONDUIT_STATE_URL"


def data_dir() -> Path:
    """The per-user data directory (XDG on Linux, Application Support on macOS, LOCALAPPDATA)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "conduit"


def default_state_url() -> str:
    """The embedded store: an SQLite file under :func:`data_dir`."""
    return f"sqlite:///{data_dir() / 'state.db'}"


def state_url() -> str:
    """``$CONDUIT_STATE_URL`` if set, else :func:`default_state_url`."""
    return os.environ.get(STATE_URL_ENV) or default_state_url()
