"""Security properties: private files, prompts only by opt-in, parameterised SQL, no pickle
or eval, no secret in a log line, and tokens on the HTTP endpoints."""

from __future__ import annotations

import ast
import logging
import os
import stat
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conduit
import conduit_litellm
from conduit import ConfigurationError, Constraints, Router, StoreError
from conduit._redact import describe_error, redact_text
from conduit._state import write_state
from conduit.cli import main as conduit_main
from conduit.stores import open_store, redact
from conduit_litellm.feedback import ConduitFeedbackLogger, FeedbackServer

from .stores.conftest import REDIS_URL, create_database, drop_database

PACKAGES = [Path(conduit.__file__).parent, Path(conduit_litellm.__file__).parent]
SOURCES = sorted(p for package in PACKAGES for p in package.rglob("*.py"))
KEY = "sk-proj-" + "Q7x" * 16


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o077], ids=["umask 022", "umask 000", "umask 077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield int(request.param)
    os.umask(old)


# -- files are private -------------------------------------------------------------------------
def test_state_history_and_exports_are_created_private(tmp_path: Path, umask: int) -> None:
    store_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    router = Router(
        ["a", "b"],
        embedding_backend="hashing",
        seed=0,
        state_path=tmp_path / "state" / "router.json",
        state_store=store_url,
    )
    decision = router.route_sync("What is 2 + 2?")
    router.update_sync(decision.decision_id, quality=1.0, cost=0.001)
    assert router.store_sync is not None
    router.store_sync.sync_now()
    wal, shm = tmp_path / "data" / "store.db-wal", tmp_path / "data" / "store.db-shm"
    assert wal.exists() and shm.exists()  # SQLite made them: they take the database's mode
    for path in (tmp_path / "data" / "store.db", wal, shm):
        assert mode(path) == 0o600, (path, oct(mode(path)))
    router.close()  # saves state_path
    assert mode(tmp_path / "state" / "router.json") == 0o600
    export = tmp_path / "export.json"
    export.write_text("an older, world-readable file", encoding="utf-8")
    export.chmod(0o644)
    assert conduit_main(["state", "export", str(export), "--url", store_url]) == 0
    assert mode(export) == 0o600  # overwritten private, whatever it was before
    write_state(tmp_path / "direct.json", {"x": 1})
    assert mode(tmp_path / "direct.json") == 0o600
    # The directories Conduit made for them are the user's alone (issue 11: 0777 under
    # umask 000, so another local user could swap the state file).
    for directory in (tmp_path / "data", tmp_path / "state"):
        assert mode(directory) == 0o700, (directory, oct(mode(directory)))
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            f'{{"prompt": "question {i}", "outcomes": {{"a": {{"quality": 1, "cost": 0.01}}, '
            f'"b": {{"quality": 0, "cost": 0.001}}}}}}\n'
            for i in range(8)
        ),
        encoding="utf-8",
    )
    report = tmp_path / "replay.json"
    argv = ["replay", "--data", str(log), "--embedding-backend", "hashing", "--algorithm", "ucb1"]
    assert conduit_main([*argv, "--json", str(report), "-q"]) == 0
    assert mode(report) == 0o600


# -- prompts only by opt-in --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_prompts_are_stored_only_by_opt_in(tmp_path: Path, backend: str) -> None:
    base = f"memory://{uuid.uuid4().hex}" if backend == "memory" else f"sqlite:///{tmp_path}/s.db"
    prompt = "My account number is 12345; what is my balance?"
    for flag, kept in (("", None), ("?store_prompts=true", prompt)):
        store = open_store(base + flag, namespace=f"ns{bool(flag)}")
        assert store.store_prompts is (kept is not None)
        router = Router(["a"], embedding_backend="hashing", seed=0, state_store=store)
        router.route_sync(prompt)
        assert router.store_sync is not None
        router.store_sync.sync_now()
        (record,) = store.history()
        assert record.prompt == kept
        assert record.prompt_hash is not None and len(record.prompt_hash) == 64
        router.close()
        store.close()


# -- SQL is parameterised ----------------------------------------------------------------------
HOSTILE = [
    "x'; DROP TABLE state; --",
    'Robert"); DROP TABLE history;--',
    "%s %(x)s ? :name {s} $1 \\' \u2019 ';",
]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store_base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hostile.db'}"
    elif request.param == "postgres":
        url = create_database()
        yield url
        drop_database(url)
    else:
        prefix = f"conduit_test_{uuid.uuid4().hex[:12]}"
        yield f"{REDIS_URL}?prefix={prefix}"
        store = open_store(f"{REDIS_URL}?prefix={prefix}")
        client: Any = store._client
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        store.close()


def test_hostile_namespace_and_model_names_round_trip(store_base: str) -> None:
    """Names are data, never SQL: they come back byte for byte and every table survives."""
    namespace = HOSTILE[0]
    bystander = open_store(store_base, namespace="bystander")
    with Router(["plain"], embedding_backend="hashing", state_store=bystander) as other:
        other.update_sync(other.route_sync("hello").decision_id, quality=1.0)
    store = open_store(store_base, namespace=namespace)
    router = Router(HOSTILE, embedding_backend="hashing", seed=0, state_store=store)
    for model in HOSTILE:
        decision = router.route_sync(
            f"question for {model}", constraints=Constraints(allowed_models=frozenset({model}))
        )
        router.update_sync(decision.decision_id, quality=0.5, cost=0.01)
    router.close()
    again = open_store(store_base, namespace=namespace)
    assert namespace in again.namespaces() and "bystander" in again.namespaces()
    snapshot = again.pull()
    assert snapshot is not None
    assert set(snapshot.sums["outcomes"]) == set(HOSTILE)
    assert sorted(r.model for r in again.history()) == sorted(HOSTILE)
    assert bystander.pull() is not None  # the other namespace's state is still there
    assert again.reset() and again.pull() is None and bystander.pull() is not None
    for s in (again, store, bystander):
        s.close()


#: Names an SQL f-string in conduit/stores may interpolate: the schema prefix, placeholders
#: and column lists built from constants. A value (namespace, model, blob) never is.
SQL_NAMES = {
    "SCHEMA",
    "schema",
    "placeholder",
    "values",
    "updates",
    "c",
    "columns",
    "HISTORY_FIELDS",
}
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "ALTER ", "DROP ", " WHERE ")


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def test_sql_strings_interpolate_only_constants() -> None:
    offenders = []
    for path in sorted((PACKAGES[0] / "stores").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                text = "".join(
                    v.value
                    for v in node.values
                    if isinstance(v, ast.Constant) and isinstance(v.value, str)
                )
                if any(word in text for word in SQL_WORDS):  # SQL is written in capitals
                    for value in node.values:
                        if isinstance(value, ast.FormattedValue) and not _names(value) <= SQL_NAMES:
                            offenders.append(f"{path.name}:{node.lineno} {ast.unparse(value)}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
                left = node.left
                if (
                    isinstance(left, ast.Constant)
                    and isinstance(left.value, str)
                    and any(word in left.value for word in SQL_WORDS)
                ):
                    offenders.append(f"{path.name}:{node.lineno} %-formatted SQL")
    assert offenders == []


# -- no pickle, no eval ------------------------------------------------------------------------
FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "joblib",
}
FORBIDDEN_CALLS = {"eval", "exec", "compile"}


def test_no_pickle_marshal_shelve_eval_or_exec_anywhere() -> None:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(path.parents[1])}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [
                    f"{where} import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN_MODULES
                ]
            elif (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] in FORBIDDEN_MODULES
            ):
                found.append(f"{where} from {node.module}")
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                    found.append(f"{where} {func.id}()")
                if isinstance(func, ast.Attribute) and func.attr in ("load", "loads"):
                    unsafe = [k for k in node.keywords if k.arg == "allow_pickle"]
                    if unsafe and not (
                        isinstance(unsafe[0].value, ast.Constant) and unsafe[0].value.value is False
                    ):
                        found.append(f"{where} {ast.unparse(func)}(allow_pickle=...)")
                    if ast.unparse(func) in ("yaml.load", "torch.load"):
                        found.append(f"{where} {ast.unparse(func)}()")
    assert found == []
    assert len(SOURCES) > 40  # the scan really read both packages


# -- secrets never reach a log line -----------------------------------------------------------
def test_conduit_litellm_logs_no_tracebacks() -> None:
    """An exception from LiteLLM may quote a key; conduit_litellm logs describe_error(exc)
    (masked, one line) instead of exc_info tracebacks."""
    found = []
    for path in SOURCES:
        if path.parent.name != "conduit_litellm":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and any(
                k.arg in ("exc_info", "stack_info") for k in node.keywords
            ):
                found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "exception":
                found.append(f"{path.name}:{node.lineno} logger.exception")
    assert found == []


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}",
        f"headers={{'Authorization': 'Bearer {KEY}'}}",
        f"Authorization: Bearer {KEY[8:]}",
        f"{{'api_key': '{KEY[8:]}', 'model': 'gpt-4o'}}",
        f"AZURE_API_KEY={KEY[8:40]}",
        f"x-api-key: {KEY[8:]}",
        f"postgresql://bob:{KEY[8:]}@db:5432/conduit",
        f"redis://:{KEY[8:]}@cache:6379/0",
        f"client_secret={KEY[8:]}&grant=x",
    ],
)
def test_redact_text_masks_secrets(text: str) -> None:
    masked = redact_text(text)
    assert KEY[8:24] not in masked and KEY[-16:] not in masked, masked
    assert "***" in masked
    assert KEY[8:24] not in describe_error(ValueError(text))


def test_redact_text_keeps_what_is_not_secret() -> None:
    text = "decision 0123456789abcdef0123456789abcdef: max_tokens=100, prompt_tokens: 5, cost $0.01"
    assert redact_text(text) == text


def test_store_urls_are_shown_without_passwords(caplog: pytest.LogCaptureFixture) -> None:
    assert redact(f"postgresql://bob:{KEY}@127.0.0.1:1/x?sslpassword={KEY}") == (
        "postgresql://bob:***@127.0.0.1:1/x?sslpassword=***"
    )
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://bob:{KEY}@127.0.0.1:1/x?connect_timeout=1").pull()
    assert KEY not in str(info.value) and "***" in str(info.value)
    with caplog.at_level(logging.DEBUG):
        router = Router(
            ["a"], embedding_backend="hashing", state_store=f"redis://:{KEY}@127.0.0.1:1/0"
        )
        router.route_sync("hello")
        router.close()
    assert "state store redis://:***@127.0.0.1:1/0 failed" in caplog.text
    assert KEY not in caplog.text


# -- tokens on the HTTP endpoints --------------------------------------------------------------
def test_feedback_endpoint_needs_a_real_token_and_keeps_it_out_of_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router(["a"], embedding_backend="hashing")
    feedback = ConduitFeedbackLogger(router=lambda: router)
    for weak in ("", "short", "x" * 15):
        with pytest.raises(ConfigurationError, match="at least 16 characters"):
            FeedbackServer(feedback, token=weak)
    server = FeedbackServer(feedback, token=KEY).start()
    try:
        with caplog.at_level(logging.DEBUG, logger="conduit_litellm"):
            request = urllib.request.Request(f"{server.url}?token={KEY}", data=b"{}", method="POST")
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=5)
            assert info.value.code == 404
            info.value.close()
        lines = [r.getMessage() for r in caplog.records if "feedback endpoint" in r.getMessage()]
        assert lines and all(KEY not in line and "token=***" in line for line in lines)
    finally:
        server.close()
