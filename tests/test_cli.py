from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conduit import __version__
from conduit.cli import main


def _log(path: Path, rows: list[dict[str, tuple[float, float | None]]]) -> Path:
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": f"question {i}: what is {i} + {i}?",
                "outcomes": {m: {"quality": q, "cost": c} for m, (q, c) in row.items()},
            }
        )
        for i, row in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def two_model_log(tmp_path: Path) -> Path:
    rows: list[dict[str, tuple[float, float | None]]] = [
        {"strong": (float(i % 4 != 2), 0.010), "weak": (float(i % 4 == 2), 0.001)}
        for i in range(60)
    ]
    return _log(tmp_path / "two.jsonl", rows)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_prints_the_table_and_writes_json(
    two_model_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out.json"
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--algorithm", "ucb1", "--seed", "3", "--json", str(out_json), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("two.jsonl: 60 queries, 2 models, policy ucb1")
    assert "oracle (best per query)" in out and "strong (best single)" in out
    report = json.loads(out_json.read_text())
    assert report["n"] == 60 and report["seed"] == 3
    assert {"mean_quality", "mean_cost", "share", "regret_vs_oracle"} <= set(report["policy"])
    assert {"oracle", "best_single", "cheapest", "random"} <= set(report["baselines"])
    assert report["baselines"]["oracle"]["mean_quality"] == 1.0
    assert "curve" not in report and "apgr" not in report


def test_replay_sweep_reports_pgr_metrics(
    two_model_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out.json"
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--sweep", "--json", str(out_json), "--cost-weight", "0.2", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert "APGR" in out and "CPT(50%)" in out
    report = json.loads(out_json.read_text())
    assert report["policy"]["preferences"] == {"quality": 1.0, "cost": 0.2, "latency": 0.0}
    assert [p["cost_weight"] for p in report["curve"]][:3] == [0.0, 0.02, 0.05]
    assert {"cost_weight", "mean_quality", "mean_cost", "strong_share"} <= set(report["curve"][0])
    for key in ("apgr", "cpt50", "cpt80"):
        assert isinstance(report[key], float)


def test_replay_plot(
    two_model_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--plot", str(png), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG" and f"wrote {png}" in out


def test_progress_bars_go_to_stderr(
    two_model_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing"
    )
    assert code == 0
    assert "embedding" in err and "replay" in err
    assert "embedding" not in out and "%|" not in out


def _bad_log(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    good = '{"prompt": "p", "outcomes": {"a": {"quality": 1}}}'
    path.write_text(f"{good}\n{good}\n{{oops\n")
    return path


def _wrong_models(tmp_path: Path) -> Path:
    path = tmp_path / "models.jsonl"
    path.write_text(
        '{"prompt": "p", "outcomes": {"a": {"quality": 1}}}\n'
        '{"prompt": "q", "outcomes": {"b": {"quality": 1}}}\n'
    )
    return path


BAD_RUNS: list[tuple[list[str], str]] = [
    (
        ["replay", "--data", "{tmp}/missing.jsonl"],
        r"conduit: error: .*missing\.jsonl: no such file",
    ),
    (["replay", "--data", "{bad}"], r"conduit: error: .*bad\.jsonl:3: not valid JSON"),
    (["replay", "--data", "{models}"], r"conduit: error: .*models\.jsonl:2: outcomes name models"),
    (["replay", "--algorithm", "nope"], r"argument --algorithm: invalid choice: 'nope'"),
    (["replay", "--limit", "0"], r"argument --limit: must be at least 1, got 0"),
    (["replay", "--limit", "ten"], r"argument --limit: expected a positive integer, got 'ten'"),
    (["replay", "--seed", "-1"], r"argument --seed: must be >= 0"),
    (["replay", "--cost-weight", "-1"], r"argument --cost-weight: must be in \[0, 100\]"),
    (["replay", "--cost-weight", "nan"], r"argument --cost-weight: must be in \[0, 100\]"),
    (["replay", "--preference", "cheap"], r"argument --preference: invalid choice: 'cheap'"),
    (["replay", "--preference", "cost", "--cost-weight", "1"], r"not allowed with argument"),
    (["replay", "--embedding-backend", "gpu"], r"argument --embedding-backend: invalid choice"),
    (
        ["replay", "--data", "{two}", "--json", "{tmp}/no/dir/out.json"],
        r"conduit: error: cannot write .*out\.json: no directory .*dir",
    ),
    (
        ["replay", "--data", "{two}", "--plot", "{tmp}/no/dir/out.png"],
        r"conduit: error: cannot write .*out\.png: no directory .*dir",
    ),
    (
        ["replay", "--data", "{two}", "--json", "{tmp}"],
        r"conduit: error: cannot write .*: it is a directory",
    ),
    (["nope"], r"invalid choice: 'nope'"),
    ([], r"usage: conduit"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_RUNS)
def test_bad_input_is_a_clean_error_with_status_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    two_model_log: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {"tmp": tmp_path, "bad": _bad_log(tmp_path), "models": _wrong_models(tmp_path),
             "two": two_model_log}  # fmt: skip
    args = [a.format(**paths) for a in argv]
    if argv[:1] == ["replay"] and "--embedding-backend" not in argv:
        args += ["--embedding-backend", "hashing", "-q"]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_missing_matplotlib_is_reported_before_the_work(
    two_model_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--plot", str(tmp_path / "x.png"),
    )  # fmt: skip
    assert code == 2
    assert "conduit: error: plotting needs matplotlib: pip install 'conduit[plot]'" in err
    assert out == "" and "embedding" not in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"conduit {__version__}")
    code, out, _ = run(capsys, "replay", "--help")
    assert code == 0 and "--sweep" in out and "--embedding-backend" in out


def test_the_console_command_runs_on_the_shipped_log(tmp_path: Path) -> None:
    exe = shutil.which("conduit", path=str(Path(sys.executable).parent)) or shutil.which("conduit")
    if exe is None:
        pytest.skip("the conduit console script is not installed")
    env: dict[str, Any] = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [exe, "replay", "--limit", "200", "--embedding-backend", "hashing"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("routerbench-arc-winogrande.jsonl.gz: 200 queries, 11 models")
    assert "gpt-4-1106-preview (best single)" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_replay_fills_a_store_that_stats_and_explain_read(
    two_model_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'replayed.db'}"
    code, out, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--algorithm", "ucb1", "--store", url, "--namespace", "lab", "--time-step", "2", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote 60 decisions, their outcomes and the learned state to {url}" in out
    code, out, err = run(capsys, "stats", "--store", url, "--namespace", "lab", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["total_decisions"] == 60 and stats["algorithm"] == "ucb1"
    assert {m["model"] for m in stats["models"]} == {"strong", "weak"}
    assert len(stats["recent"]) == 10
    newest = stats["recent"][0]
    code, out, err = run(capsys, "stats", "--store", url, "--namespace", "lab", "--recent", "2")
    assert code == 0, err
    assert f"{url} namespace 'lab': ucb1, 60 decisions, 60 quality feedbacks" in out
    assert "savings: " in out and "exploration: " in out and newest["decision_id"][:12] in out
    code, out, err = run(capsys, "explain", newest["decision_id"], "--store", url,
                         "--namespace", "lab")  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"decision {newest['decision_id']}: {newest['model']} (ucb1")
    assert f"why: {newest['reason']}" in out and "preferences: quality 1" in out
    assert "outcome: quality" in out
    code, out, err = run(capsys, "explain", newest["decision_id"], "--store", url,
                         "--namespace", "lab", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["selected_model"] == newest["model"]


STORE_RUNS: list[tuple[list[str], str]] = [
    (["explain", "nope", "--store", "memory://"], r"no decision 'nope' in the history of"),
    (["explain", "", "--store", "memory://"], r"decision_id must be a non-empty str"),
    (["stats", "--store", "nope"], r"state store must be a URL"),
    (["stats", "--store", "memory://", "--recent", "-1"], r"--recent must be >= 0"),
    (["stats", "--store", "memory://", "--namespace", "a\nb"], r"control characters"),
    (["dashboard", "--store", "memory://", "--port", "99999"], r"must be in 0..65535"),
    (["dashboard", "--store", "memory://", "--host", "0.0.0.0"], r"give --token"),
    (["replay", "--store", "ftp://x"], r"unknown state store scheme 'ftp'"),
    (["replay", "--time-step", "0"], r"argument --time-step: must be a positive number"),
]


@pytest.mark.parametrize(("argv", "pattern"), STORE_RUNS)
def test_store_commands_fail_cleanly(
    argv: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and re.search(pattern, err), err
    assert "Traceback" not in err


def test_explain_says_when_a_record_has_no_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conduit.stores import HistoryRecord, open_store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with open_store(url) as store:
        store.write_history([HistoryRecord("d-old", "default", 1.0, model="m", quality=1.0)])
    code, _, err = run(capsys, "explain", "d-old", "--store", url)
    assert code == 2 and "recorded without an explanation" in err


def test_stats_of_an_empty_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stats", "--store", "memory://?namespace=n")
    assert (
        code == 0
        and out.strip() == "memory://?namespace=n namespace 'n': nothing learned or recorded yet"
    )


# -- one flag for a store, reading commands that create nothing, short ids ------------------------
@pytest.fixture
def replayed(two_model_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = f"sqlite:///{tmp_path / 'replayed.db'}"
    code, _, err = run(
        capsys, "replay", "--data", str(two_model_log), "--embedding-backend", "hashing",
        "--algorithm", "ucb1", "--store", url, "-q",
    )  # fmt: skip
    assert code == 0, err
    return url


def test_state_takes_store_like_every_command_and_url_still_works(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "state", "show", "--store", replayed)
    assert code == 0, err
    assert "ucb1" in out and err == ""
    code, old_out, err = run(capsys, "state", "show", "--url", replayed)
    assert code == 0 and old_out == out
    assert "--url is deprecated; use --store" in err
    code, _, err = run(capsys, "state", "show", "--url", replayed, "--store", replayed)
    assert code == 2 and "give --store only" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["stats"],
        ["explain", "abc"],
        ["dashboard", "--port", "0"],
        ["state", "show"],
        ["state", "export", "-"],
        ["state", "reset", "--yes"],
    ],
)
def test_reading_commands_never_create_a_store(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.db"
    code, _, err = run(capsys, *argv, "--store", f"sqlite:///{typo}")
    assert code == 2 and f"no store at {typo}" in err, err
    assert not typo.exists() and list(tmp_path.iterdir()) == []


def test_explain_takes_the_short_id_stats_prints(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "stats", "--store", replayed, "--recent", "1")
    assert code == 0, err
    newest = json.loads(run(capsys, "stats", "--store", replayed, "--json")[1])["recent"][0]
    short = newest["decision_id"][:12]
    assert short in out
    code, out, err = run(capsys, "explain", short, "--store", replayed)
    assert code == 0, err
    assert out.startswith(f"decision {newest['decision_id']}: {newest['model']} (ucb1")


def test_explain_refuses_an_ambiguous_or_unknown_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conduit.stores import HistoryRecord, open_store

    url = f"sqlite:///{tmp_path / 'ids.db'}"
    with open_store(url) as store:
        store.write_history(
            [HistoryRecord(i, "default", 1.0, model="m") for i in ("abc-1", "abc-2", "xyz-1")]
        )
    code, _, err = run(capsys, "explain", "abc", "--store", url)
    assert code == 2 and "'abc' is the start of 2 decision ids" in err and "abc-1" in err
    code, _, err = run(capsys, "explain", "nope", "--store", url)
    assert code == 2 and "no decision 'nope' in the history of" in err
    assert "Traceback" not in err


def test_stats_measures_savings_against_the_dearest_or_the_named_model(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = json.loads(run(capsys, "stats", "--store", replayed, "--json")[1])
    costs = {m["model"]: m["mean_cost"] for m in stats["models"]}
    assert stats["savings"]["baseline"] == max(costs, key=costs.__getitem__) == "strong"
    code, out, err = run(capsys, "stats", "--store", replayed, "--baseline-model", "weak")
    assert code == 0, err
    assert "against always weak (quality" in out
    code, _, err = run(capsys, "stats", "--store", replayed, "--baseline-model", "gpt-9")
    assert code == 2 and "unknown baseline model 'gpt-9'" in err


def test_stats_reports_quality_sources_and_judge_cost(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from conduit import Router

    url = f"sqlite:///{tmp_path / 'judged.db'}"
    router = Router(["cheap", "dear"], embedding_backend="hashing", seed=0, state_store=url)
    router.start()
    for i, source in enumerate(["judge", "judge", "explicit", "regeneration"]):
        d = router.route_sync(f"question {i}")
        router.update_sync(d.decision_id, quality=1.0, cost=0.01 * (i + 1), source=source)
    router.count("judge_cost", 0.004)
    router.count("judge_calls", 2)
    router.count("judge_paused_budget", 5)
    router.close()
    code, out, _ = run(capsys, "stats", "--store", url)
    assert code == 0
    assert "quality labels by source: explicit 1, judge 2, shadow 0, regeneration 1" in out
    assert "judge: $0.0040 over 2 calls" in out and "paused by budget 5" in out
    code, out, _ = run(capsys, "stats", "--store", url, "--json")
    assert json.loads(out)["quality_sources"]["judge_cost"] == 0.004
