"""State and history stores behind one protocol, chosen by URL.

===============================  =============================================
``memory://`` / ``memory://n``   in-process (private / shared by name ``n``)
``sqlite:///rel.db``             an SQLite file (``sqlite:////abs/path.db``)
``postgresql://user@host/db``    PostgreSQL, schema ``conduit`` (``conduit[postgres]``)
``redis://host:6379/0``          Redis (``conduit[redis]``); ``?prefix=`` for the keys
===============================  =============================================

Every URL also takes ``?namespace=`` (which router's learning; default
``default``), ``?store_prompts=true`` (keep prompt text in the history; off
by default, only its sha256 is kept) and the history retention,
``?history_days=30&history_max=200000`` (the defaults; ``0``: no limit).
Without a URL, ``$CONDUIT_STATE_URL`` or an SQLite file in the user's data
directory is used.

>>> store = open_store("memory://?namespace=docs")
>>> store.namespace, store.pull() is None
('docs', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conduit._errors import ConfigurationError
from conduit.config import STATE_SCHEMES, state_url
from conduit.stores._base import (
    HISTORY_DAYS,
    HISTORY_MAX,
    HistoryRecord,
    Learner,
    Meta,
    Snapshot,
    Store,
    Sums,
    check_retention,
)
from conduit.stores._sync import StoreSync

__all__ = [
    "HistoryRecord",
    "Learner",
    "Meta",
    "Snapshot",
    "Store",
    "StoreSync",
    "Sums",
    "check_url",
    "open_store",
    "redact",
]

_OURS = ("namespace", "store_prompts", "prefix", "history_days", "history_max")
#: Query parameters that carry a credential (libpq's ``password``, ``sslpassword``, ...).
_SECRET_PARAMS = frozenset({"password", "sslpassword", "passwd", "token", "api_key", "secret"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def redact(url: str) -> str:
    """``url`` with its password, in the address or a query parameter, replaced by ``***``
    (for logs and errors).

    >>> redact("postgresql://bob:pw@db/x?sslmode=require&password=pw")
    'postgresql://bob:***@db/x?sslmode=require&password=***'
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k.lower() in _SECRET_PARAMS for k, _ in query)
    if parts.password is None and not secret_query:
        return url  # unchanged (urlunsplit would drop the // of memory://)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}:***@{netloc[-1]}")
    if secret_query:
        hidden = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


def check_url(url: object) -> str:
    """``url`` if it names a store :func:`open_store` can open (checked without any I/O)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"state store must be a URL like sqlite:///state.db, postgresql://..., redis://... "
            f"or memory://, got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in STATE_SCHEMES:
        raise ConfigurationError(
            f"unknown state store scheme {parts.scheme!r} in {redact(url)!r}; "
            "use memory://, sqlite:///path, postgresql://... or redis://..."
        )
    flag = dict(parse_qsl(parts.query, keep_blank_values=True)).get("store_prompts", "").lower()
    if flag not in _TRUE | _FALSE:
        raise ConfigurationError(f"store_prompts must be true or false, got {flag!r}")
    _retention(url)
    return url


def open_store(
    url: str | None = None,
    *,
    namespace: str | None = None,
    store_prompts: bool | None = None,
    must_exist: bool = False,
) -> Store:
    """The store a URL names (``None``: ``$CONDUIT_STATE_URL`` or the embedded SQLite file).

    Keyword arguments override the URL's ``?namespace=`` and ``?store_prompts=``.
    ``must_exist=True`` (the reading commands) refuses an SQLite file that is not there
    rather than creating it, so a mistyped path is an error, not a new empty store.
    """
    if url is None:
        url = state_url()
    check_url(url)
    store = _open(url, namespace, store_prompts, must_exist)
    store.history_days, store.history_max = _retention(url)
    return store


def _retention(url: str) -> tuple[float | None, int | None]:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return check_retention(
        _number(query, "history_days", float, HISTORY_DAYS),
        _number(query, "history_max", int, HISTORY_MAX),
    )


def _number(query: dict[str, str], name: str, kind: type[float] | type[int], default: Any) -> Any:
    if name not in query:
        return default
    try:
        return kind(query[name])
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {query[name]!r}") from None


def _open(url: str, namespace: str | None, store_prompts: bool | None, must_exist: bool) -> Store:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OURS}
    rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in _OURS])))
    flag = ours.get("store_prompts", "").lower()
    shown = redact(url)
    ns = namespace or ours.get("namespace") or "default"
    prompts = flag in _TRUE if store_prompts is None else store_prompts
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from conduit.stores._memory import MemoryStore

        return MemoryStore(
            name=parts.netloc + parts.path, url=shown, namespace=ns, store_prompts=prompts
        )
    if scheme == "sqlite":
        from conduit.stores._sqlite import SQLiteStore

        path = url.split("://", 1)[1].split("?", 1)[0].removeprefix("/")
        if not path:
            raise ConfigurationError(
                f"sqlite URL needs a path, e.g. sqlite:///state.db, got {url!r}"
            )
        if must_exist and not Path(path).expanduser().is_file():
            raise ConfigurationError(f"no store at {Path(path).expanduser()} ({shown})")
        return SQLiteStore(path=path, url=shown, namespace=ns, store_prompts=prompts)
    if scheme in ("postgresql", "postgres"):
        from conduit.stores._postgres import PostgresStore

        return PostgresStore(dsn=rest, url=shown, namespace=ns, store_prompts=prompts)
    if scheme in ("redis", "rediss", "unix"):
        from conduit.stores._redis import RedisStore

        return RedisStore(
            redis_url=rest,
            prefix=ours.get("prefix") or "conduit",
            url=shown,
            namespace=ns,
            store_prompts=prompts,
        )
    raise ConfigurationError(
        f"unknown state store scheme {parts.scheme!r} in {redact(url)!r}; "
        "use memory://, sqlite:///path, postgresql://... or redis://..."
    )
