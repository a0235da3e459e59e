"""Settings read from the environment, in one place.

``CONDUIT_STATE_URL`` chooses the state store for ``conduit state`` and for
anything that asks for the default store; without it, state lives in an SQLite
file in the user's data directory. The proxy plugin is configured by
``CONDUIT_*`` variables (:func:`plugin_settings`), ``CONDUIT_METRICS*`` among them
(:func:`metrics_settings`).
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
    "PluginSettings",
    "dashboard_token",
    "data_dir",
    "default_state_url",
    "metrics_settings",
    "plugin_settings",
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


@dataclass(frozen=True, kw_only=True)
class PluginSettings:
    """The proxy plugin's configuration (``conduit_litellm.plugin.from_env``)."""

    preferences: str = "balanced"
    bandit_algorithm: str | None = None
    embedding_backend: str = "auto"
    state_path: str | None = None
    seed: int | None = None
    save_interval: float = 30.0
    feedback_port: int | None = None
    feedback_host: str = "127.0.0.1"
    feedback_token: str | None = None
    metrics: MetricsSettings = MetricsSettings()


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def plugin_settings(environ: Mapping[str, str] | None = None) -> PluginSettings:
    """``CONDUIT_PREFERENCES`` (balanced), ``CONDUIT_BANDIT_ALGORITHM`` (hybrid),
    ``CONDUIT_EMBEDDING_BACKEND`` (auto), ``CONDUIT_STATE_PATH``, ``CONDUIT_SEED``,
    ``CONDUIT_SAVE_INTERVAL`` (30 seconds), ``CONDUIT_FEEDBACK_PORT`` with
    ``CONDUIT_FEEDBACK_TOKEN`` and ``CONDUIT_FEEDBACK_HOST``, and the metrics
    variables of :func:`metrics_settings`. Values are checked by the plugin itself.

    >>> plugin_settings({"CONDUIT_PREFERENCES": "cost", "CONDUIT_SEED": "7"}).seed
    7
    """
    env = os.environ if environ is None else environ
    seed, port = _number(env, "CONDUIT_SEED", int), _number(env, "CONDUIT_FEEDBACK_PORT", int)
    interval = _number(env, "CONDUIT_SAVE_INTERVAL", float)
    return PluginSettings(
        preferences=env.get("CONDUIT_PREFERENCES") or "balanced",
        bandit_algorithm=env.get("CONDUIT_BANDIT_ALGORITHM") or None,
        embedding_backend=env.get("CONDUIT_EMBEDDING_BACKEND") or "auto",
        state_path=env.get("CONDUIT_STATE_PATH") or None,
        seed=None if seed is None else int(seed),
        save_interval=30.0 if interval is None else interval,
        feedback_port=None if port is None else int(port),
        feedback_host=env.get("CONDUIT_FEEDBACK_HOST") or "127.0.0.1",
        feedback_token=env.get("CONDUIT_FEEDBACK_TOKEN") or None,
        metrics=metrics_settings(env),
    )
