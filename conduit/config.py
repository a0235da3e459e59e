"""Settings read from the environment, in one place.

``CONDUIT_STATE_URL`` chooses the state store for ``conduit state`` and for
anything that asks for the default store; without it, state lives in an SQLite
file in the user's data directory. ``CONDUIT_METRICS*`` turn on the proxy
plugin's Prometheus metrics (:func:`metrics_settings`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conduit.errors import ConfigurationError

__all__ = [
    "DASHBOARD_TOKEN_ENV",
    "METRICS_ENV",
    "METRICS_HOST_ENV",
    "METRICS_PORT_ENV",
    "STATE_URL_ENV",
    "MetricsSettings",
    "dashboard_token",
    "data_dir",
    "default_state_url",
    "metrics_settings",
    "state_url",
]

STATE_URL_ENV = "CONDUIT_STATE_URL"
DASHBOARD_TOKEN_ENV = "CONDUIT_DASHBOARD_TOKEN"
METRICS_ENV = "CONDUIT_METRICS"
METRICS_PORT_ENV = "CONDUIT_METRICS_PORT"
METRICS_HOST_ENV = "CONDUIT_METRICS_HOST"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


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


def dashboard_token() -> str | None:
    """``$CONDUIT_DASHBOARD_TOKEN``: the token ``conduit dashboard`` requires (None: unset)."""
    return os.environ.get(DASHBOARD_TOKEN_ENV) or None


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """Whether the proxy plugin keeps Prometheus metrics, and where it serves them."""

    enabled: bool = False
    port: int | None = None
    host: str = "127.0.0.1"


def metrics_settings(environ: Mapping[str, str] | None = None) -> MetricsSettings:
    """``CONDUIT_METRICS`` (1/true: keep metrics, shown on LiteLLM's own ``/metrics``),
    ``CONDUIT_METRICS_PORT`` (also serve them on this port; implies on) and
    ``CONDUIT_METRICS_HOST`` (the interface, 127.0.0.1 by default).

    >>> metrics_settings({"CONDUIT_METRICS_PORT": "9464"})
    MetricsSettings(enabled=True, port=9464, host='127.0.0.1')
    """
    env = os.environ if environ is None else environ
    flag = env.get(METRICS_ENV, "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ConfigurationError(f"{METRICS_ENV} must be 1 or 0 (true/false), got {flag!r}")
    raw_port = env.get(METRICS_PORT_ENV, "").strip()
    port: int | None = None
    if raw_port:
        try:
            port = int(raw_port)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"{METRICS_PORT_ENV} must be a port number, got {raw_port!r}")
    return MetricsSettings(
        enabled=flag in _TRUE or port is not None,
        port=port,
        host=env.get(METRICS_HOST_ENV, "").strip() or "127.0.0.1",
    )
