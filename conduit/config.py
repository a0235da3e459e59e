"""Settings read from keyword arguments and the environment, in one place.

:class:`ConduitSettings` is the one settings model of the LiteLLM strategy, the
proxy plugin and the CLI: the same fields from keyword arguments and
``CONDUIT_*`` variables (a keyword wins), validated once, bad values refused
with a :class:`~conduit._errors.ConfigurationError` naming the field and what it
accepts.

Where learning lives: :func:`resolve_state_url` (the one place that decides it)
takes an explicit URL, else ``$CONDUIT_STATE_URL``, else the embedded store, an
SQLite file in the user's data directory (:func:`default_state_url`).
:func:`model_list_namespace` names the namespace of one model list, so two
applications with different model lists never mix their learning, and
:func:`choose_namespace` is how a reader (``conduit stats``) picks one when
none is named.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conduit._errors import ConfigurationError

if TYPE_CHECKING:
    from conduit.judge import Judge

__all__ = [
    "DASHBOARD_TOKEN_ENV",
    "MEMORY_STATE_URL",
    "STATE_SCHEMES",
    "STATE_URL_ENV",
    "ConduitSettings",
    "check_state_url",
    "choose_namespace",
    "dashboard_token",
    "data_dir",
    "default_state_url",
    "load_settings",
    "model_list_namespace",
    "resolve_state_url",
    "state_url",
]

STATE_URL_ENV = "CONDUIT_STATE_URL"
DASHBOARD_TOKEN_ENV = "CONDUIT_DASHBOARD_TOKEN"


def data_dir() -> Path:
    """The per-user data directory (platformdirs: XDG on Linux, Application Support on macOS,
    LOCALAPPDATA on Windows)."""
    return Path(platformdirs.user_data_dir("conduit", appauthor=False))


def default_state_url() -> str:
    """The embedded store: an SQLite file under :func:`data_dir`."""
    return f"sqlite:///{data_dir() / 'state.db'}"


def state_url() -> str:
    """``$CONDUIT_STATE_URL`` if set, else :func:`default_state_url`."""
    return os.environ.get(STATE_URL_ENV) or default_state_url()


#: The URL that keeps learning in the process only (no persistence).
MEMORY_STATE_URL = "memory://"
#: The store URL schemes :func:`conduit.stores.open_store` opens.
STATE_SCHEMES = ("memory", "sqlite", "postgresql", "postgres", "redis", "rediss", "unix")


def check_state_url(url: object, name: str = "state_store") -> str:
    """``url`` if it names a store Conduit can open (checked without opening it).

    >>> check_state_url("sqlite:///x.db")
    'sqlite:///x.db'
    >>> check_state_url("sqlit:///x.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    conduit._errors.ConfigurationError: state_store: unknown scheme 'sqlit' in 'sqlit:///x.db'; ...
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"{name} must be a store URL (memory://, sqlite:///path, postgresql://..., "
            f"redis://...), got {url!r}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in STATE_SCHEMES:
        from conduit.stores import redact

        raise ConfigurationError(
            f"{name}: unknown scheme {scheme!r} in {redact(url)!r}; use one of memory://, "
            "sqlite:///path, postgresql://..., redis://..."
        )
    if scheme == "sqlite" and not url.split("://", 1)[1].split("?", 1)[0].removeprefix("/"):
        raise ConfigurationError(f"{name}: an sqlite URL needs a path, e.g. sqlite:///state.db")
    return url


def resolve_state_url(explicit: str | None = None) -> str:
    """Where learning lives: ``explicit``, else ``$CONDUIT_STATE_URL``, else the embedded
    SQLite file (:func:`default_state_url`). The one default for the strategy, the proxy
    plugin and every CLI command.

    >>> resolve_state_url("memory://")
    'memory://'
    """
    return check_state_url(explicit) if explicit is not None else check_state_url(state_url())


def model_list_namespace(deployment_ids: Iterable[str]) -> str:
    """The namespace of one model list: derived from its deployment ids (order-free), so a
    restart with the same list finds its learning and another list never mixes with it.

    >>> model_list_namespace(["b", "a"]) == model_list_namespace(["a", "b", "a"])
    True
    >>> model_list_namespace(["a"]).startswith("litellm-")
    True
    """
    ids = sorted({str(i) for i in deployment_ids})
    return "litellm-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def choose_namespace(current: str, available: Sequence[str], *, explicit: bool) -> str:
    """The namespace a reader (``conduit stats``) shows when none was named: the store's
    only one, else ``default``; several and none named is an error listing them.

    >>> choose_namespace("default", ["litellm-1a2b"], explicit=False)
    'litellm-1a2b'
    >>> choose_namespace("default", ["litellm-1a2b"], explicit=True)
    'default'
    """
    if explicit or current in available or not available:
        return current
    if len(available) == 1:
        return available[0]
    raise ConfigurationError(
        f"the store holds the learning of {len(available)} routers; name one with "
        f"--namespace: {sorted(available)}"
    )


def dashboard_token() -> str | None:
    """``$CONDUIT_DASHBOARD_TOKEN``: the token ``conduit dashboard`` requires (None: unset)."""
    return os.environ.get(DASHBOARD_TOKEN_ENV) or None


Backend = Literal["auto", "onnx", "sentence-transformers", "hashing"]


class ConduitSettings(BaseSettings):
    """The settings of the LiteLLM strategy and proxy plugin: keywords, else ``CONDUIT_*``.

    Each field reads ``CONDUIT_<FIELD>`` (``state_store`` reads ``CONDUIT_STATE_URL``);
    ``preferences`` and ``scope`` also take JSON there (``{"cost": 2}``, ``["a", "b"]``).
    Build it with :func:`load_settings`, which turns a bad value into a
    :class:`~conduit._errors.ConfigurationError`.

    >>> load_settings(preferences="cost", seed=7).seed
    7
    """

    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_", frozen=True, extra="forbid", populate_by_name=True
    )

    preferences: str | dict[str, float] = "balanced"
    bandit_algorithm: str | None = None
    use_hybrid: bool | None = None
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_backend: Backend = "auto"
    seed: int | None = None
    scope: Literal["all", "group"] | list[str] = "all"
    state_store: str | None = Field(
        default=None,
        validation_alias=AliasChoices("state_store", STATE_URL_ENV),
    )
    state_path: str | None = None
    save_interval: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    feedback_token: str | None = None
    feedback_port: int | None = Field(default=None, ge=0, le=65535)
    feedback_host: str = "127.0.0.1"
    metrics: bool = False
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    response_ttl: float = Field(default=24 * 3600.0, gt=0)
    max_responses: int = Field(default=100_000, gt=0)
    signal_grace: float = Field(default=300.0, ge=0, allow_inf_nan=False)
    # The sampled judge (conduit.judge.Judge): on when judge_model names a model group.
    judge_model: str | None = Field(default=None, min_length=1)
    judge_sample_rate: float = Field(default=0.05, ge=0, le=1)
    judge_shadow_rate: float = Field(default=0.0, ge=0, le=1)
    judge_reference_model: str | None = Field(default=None, min_length=1)
    judge_max_cost_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    judge_max_cost_per_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    judge_max_queue: int = Field(default=256, ge=1)
    judge_structured: bool = True
    judge_timeout: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    regenerations: bool = True

    @field_validator("preferences", mode="before")
    @classmethod
    def _known_preferences(cls, value: object) -> object:
        """Checked as Preferences before the union's own checks, so that a bad weight or
        target is named (``Preferences.budget: …``), not reported as "not a string"."""
        from conduit._types import Preferences

        if isinstance(value, str):
            Preferences.of(value)
        elif isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            Preferences(**value)
        return value

    @field_validator("bandit_algorithm")
    @classmethod
    def _known_algorithm(cls, value: str | None) -> str | None:
        from conduit.engines.bandits import ALGORITHMS

        if value is not None and value not in ALGORITHMS:
            raise ValueError(f"must be one of {sorted(ALGORITHMS)}, got {value!r}")
        return value

    @field_validator("scope")
    @classmethod
    def _scope_groups(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or not all(value)):
            raise ValueError(f"must be 'all', 'group' or a non-empty list of groups, got {value!r}")
        return value

    @field_validator("state_store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_state_url(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc).removeprefix("state_store: ")) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ConduitSettings:
        algorithm, hybrid = self.bandit_algorithm, self.use_hybrid
        if (hybrid and algorithm not in (None, "hybrid")) or (
            hybrid is False and algorithm == "hybrid"
        ):
            raise ValueError(
                f"use_hybrid={hybrid} contradicts bandit_algorithm={algorithm!r}: leave "
                "use_hybrid unset with bandit_algorithm"
            )
        return self

    def judge(self) -> Judge | None:
        """The :class:`~conduit.judge.Judge` the ``judge_*`` fields describe (None: no
        ``judge_model``, no judge)."""
        if self.judge_model is None:
            return None
        from conduit.judge import Judge

        return Judge(
            self.judge_model,
            sample_rate=self.judge_sample_rate,
            shadow_rate=self.judge_shadow_rate,
            reference_model=self.judge_reference_model,
            max_cost_per_hour=self.judge_max_cost_per_hour,
            max_cost_per_day=self.judge_max_cost_per_day,
            max_queue=self.judge_max_queue,
            structured=self.judge_structured,
            timeout=self.judge_timeout,
            seed=self.seed,
        )

    @property
    def algorithm(self) -> str | None:
        """The algorithm these settings ask for (None: the engine's default)."""
        if self.bandit_algorithm is not None:
            return self.bandit_algorithm
        return None if self.use_hybrid is None else ("hybrid" if self.use_hybrid else "thompson")


def load_settings(**given: Any) -> ConduitSettings:
    """:class:`ConduitSettings` from keywords (those given and not None win) and ``CONDUIT_*``.

    A bad value raises :class:`~conduit._errors.ConfigurationError` naming the argument.

    >>> load_settings(bandit_algorithm="linucbb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    conduit._errors.ConfigurationError: bandit_algorithm must be one of [...], got 'linucbb'
    """
    given = {k: v for k, v in given.items() if v is not None}
    try:
        from_env = ConduitSettings()
        merged = {**from_env.model_dump(exclude_unset=True), **given}
        return ConduitSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """pydantic's errors as one clause per field (its first), without internals or links."""
    parts: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in parts:
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if not field:
            parts[field] = message
        elif message.startswith("must "):
            parts[field] = f"{field} {message}"
        elif error["type"] == "value_error":
            parts[field] = f"{field}: {message}"
        else:
            parts[field] = f"{field}: {message}, got {error.get('input')!r}"
    return "; ".join(parts.values())
