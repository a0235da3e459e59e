"""Contextual routing on model7-mixed: does a policy beat every single model? (seeds 0-2)

    python benchmarks/bench_model7.py [--algorithms hybrid cluster_thompson] [--seeds 0 1 2]
    python benchmarks/bench_model7.py --variants [--seeds 0 1 2 3 4 5 6 7]
    python benchmarks/bench_model7.py --ceiling [--seeds 0 1 2 3 4 5]

model7-mixed (../shared/datasets/, not shipped: no license) is 4,223 queries of four kinds
(MMLU, C-Eval, ARC-Easy, JavaScript) answered by 7 open 7-8B models, quality only. Each
policy replays it online (preference ``quality``, every decision's quality fed back), in
the file's model order and reversed; the table gives its quality per task against the
best single model and the best model per task, both chosen in hindsight.

``--ceiling`` is what the queries' features can say at best: routers trained offline on a
random half of the log with *every* model's outcome (seven times what a bandit sees),
scored on the other half (5 splits, both ways): the best single model of the training
half, the best model per task (true labels), and per k-means cluster of the features
the policies see (shrunk to the model's mean with 20 pseudo-counts). It then gives the
online bounds, idealised learners run on the log alone (no router, no features) in the
replays' query orders: with full information (every model's outcome of each query seen
after routing it) following the leader, and with bandit feedback (the chosen model's
outcome only) Thompson and UCB with its constant chosen in hindsight; each with the true
task labels and without; in both model orders, as ties are broken at random.

``--variants`` is the robustness gate for a policy change: the full log, each half,
the models reversed, each task left out of the log (a mix the policy was not tuned on)
and model subsets (the best model left out; every task's best left out; a random four).
One run's standard deviation is about 0.01: at 6 seeds, differences below about 0.005
are noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace as dc_replace

import _common  # noqa: F401 - the offline environment
import numpy as np

from conduit._types import Preferences
from conduit.replay import DEFAULT_ALGORITHM, ReplayData, load
from conduit.replay._loop import _replay_once
from conduit.replay.log import iter_log

MODEL7 = "/work/shared/datasets/model7-mixed.jsonl.gz"
QUALITY = Preferences.of("quality")
UCB_C = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
ORDERS = ("file order", "reversed")  # the models' order


def tasks_of(path: str, n: int) -> np.ndarray:
    tasks = np.array([record.task.split("/")[-1] for record in iter_log(path)])
    if tasks.size != n:
        raise SystemExit(f"{path}: {tasks.size} records but {n} loaded queries")
    return tasks


def rows(data: ReplayData, keep: np.ndarray) -> ReplayData:
    idx = np.flatnonzero(keep)
    return dc_replace(
        data,
        prompts=tuple(data.prompts[i] for i in idx),
        quality=data.quality[idx],
        cost=data.cost[idx],
    )


def models(data: ReplayData, keep: list[int]) -> ReplayData:
    return dc_replace(
        data,
        models=tuple(data.models[k] for k in keep),
        quality=data.quality[:, keep],
        cost=data.cost[:, keep],
    )


def run(data: ReplayData, algorithm: str, seed: int) -> np.ndarray:
    """The quality each query got (in log order) from one online replay."""
    trace = _replay_once(data, algorithm, QUALITY, seed, None)
    got = np.empty(len(data))
    got[trace.order] = data.quality[trace.order, trace.chosen]
    return got


def table(data: ReplayData, tasks: np.ndarray, algorithms: list[str], seeds: list[int]) -> dict:
    kinds = sorted(set(tasks.tolist()))
    q = data.quality
    single = int(np.argmax(q.mean(axis=0)))
    per_task_best = {t: float(q[tasks == t].mean(axis=0).max()) for t in kinds}
    out: dict = {
        "n": len(data),
        "tasks": {t: int((tasks == t).sum()) for t in kinds},
        "best single": {
            "model": data.models[single],
            "all": float(q[:, single].mean()),
            **{t: float(q[tasks == t, single].mean()) for t in kinds},
        },
        "best per task": {
            "all": float(sum(per_task_best[t] * (tasks == t).sum() for t in kinds) / len(data)),
            **per_task_best,
        },
        "oracle": {"all": float(q.max(axis=1).mean())},
        "policies": {},
    }
    for algorithm in algorithms:
        for order, d in (
            ("file order", data),
            ("reversed", models(data, list(range(len(data.models)))[::-1])),
        ):
            runs = [run(d, algorithm, s) for s in seeds]
            out["policies"][f"{algorithm}, {order}"] = {
                "all": statistics.mean(float(g.mean()) for g in runs),
                "per seed": [round(float(g.mean()), 4) for g in runs],
                **{t: statistics.mean(float(g[tasks == t].mean()) for g in runs) for t in kinds},
            }
    return out


def print_table(out: dict, seeds: list[int]) -> None:
    kinds = list(out["tasks"])
    head = " | ".join(f"{t} ({out['tasks'][t]})" for t in kinds)
    print(f"model7-mixed, {out['n']} queries, preference quality, seeds {seeds}\n")
    print(f"| | all | {head} | per seed |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    rows_ = [
        (
            f"best single model ({out['best single']['model'].split('/')[-1]})",
            out["best single"],
            "",
        ),
        ("best model per task (hindsight)", out["best per task"], ""),
    ]
    rows_ += [
        (name, row, " / ".join(f"{s:.3f}" for s in row["per seed"]))
        for name, row in out["policies"].items()
    ]
    for name, row, seeds_text in rows_:
        cells = " | ".join(f"{row[t]:.3f}" for t in kinds)
        print(f"| {name} | **{row['all']:.3f}** | {cells} | {seeds_text} |")
    print(f"\noracle (best model per query): {out['oracle']['all']:.3f}")


def kmeans(z: np.ndarray, k: int, seed: int, rounds: int = 30) -> np.ndarray:
    """Spherical k-means centroids of the unit rows ``z``."""
    centres = z[np.random.default_rng(seed).choice(len(z), k, replace=False)].copy()
    for _ in range(rounds):
        near = np.argmax(z @ centres.T, axis=1)
        for j in range(k):
            if (near == j).any():
                c = z[near == j].sum(axis=0)
                centres[j] = c / (np.linalg.norm(c) or 1.0)
    return centres


def ceiling(data: ReplayData, tasks: np.ndarray, splits: int = 5) -> dict[str, float]:
    x = data.extractor.features_batch(list(data.prompts))[:, :-1]  # without the bias
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    q, n = data.quality, len(data)
    kinds = sorted(set(tasks.tolist()))
    out: dict[str, list[float]] = {}
    for split in range(splits):
        perm = np.random.default_rng(split).permutation(n)
        halves = (perm[: n // 2], perm[n // 2 :])
        for train, test in (halves, halves[::-1]):
            scores = out.setdefault("best single model of the training half", [])
            scores.append(float(q[test, int(np.argmax(q[train].mean(axis=0)))].mean()))
            best = {t: int(np.argmax(q[train][tasks[train] == t].mean(axis=0))) for t in kinds}
            pick = np.array([best[t] for t in tasks[test]])
            out.setdefault("best model per task (true labels)", []).append(
                float(q[test, pick].mean())
            )
            prior = q[train].mean(axis=0)
            for k in (4, 8, 16, 32):
                centres = kmeans(z[train], k, seed=split)
                near_train = np.argmax(z[train] @ centres.T, axis=1)
                near_test = np.argmax(z[test] @ centres.T, axis=1)
                means = np.array(
                    [
                        (q[train][near_train == j].sum(axis=0) + 20 * prior)
                        / ((near_train == j).sum() + 20)
                        for j in range(k)
                    ]
                )
                pick = means.argmax(axis=1)[near_test]
                out.setdefault(f"best model per feature cluster, k={k}", []).append(
                    float(q[test, pick].mean())
                )
    return {name: statistics.mean(v) for name, v in out.items()}


def online(q: np.ndarray, groups: np.ndarray, seed: int, policy: str, c: float = 0.0) -> float:
    """Mean quality of one online pass over the log, learning each group's means apart.

    ``policy`` is ``full`` (every model's outcome seen after each query: follow the
    leader), ``ucb`` (the chosen model's only: mean + c * sqrt(log t / (n + 1)), t the
    group's queries so far) or ``thompson`` (the chosen model's only, Beta(1, 1) prior).
    Follow the leader and UCB start each mean at 0.5 with 1 pseudo-count; ties are
    broken at random.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(q))  # the order _replay_once routes the queries in
    sums = np.zeros((int(groups.max()) + 1, q.shape[1]))
    pulls = np.zeros_like(sums)
    seen = np.zeros(len(sums))
    total = 0.0
    for row in order:
        g = groups[row]
        if policy == "thompson":
            score = rng.beta(1 + sums[g], 1 + pulls[g] - sums[g])
        else:
            bonus = c * np.sqrt(np.log(seen[g] + 1) / (pulls[g] + 1))
            score = (sums[g] + 0.5) / (pulls[g] + 1) + bonus
        top = np.flatnonzero(score == score.max())
        k = int(top[rng.integers(top.size)])
        total += q[row, k]
        seen[g] += 1
        if policy == "full":
            sums[g] += q[row]
            pulls[g] += 1
        else:
            sums[g, k] += q[row, k]
            pulls[g, k] += 1
    return total / len(q)


def online_bounds(q: np.ndarray, tasks: np.ndarray, seeds: list[int]) -> dict:
    """Per policy and column (task labels or not, model order), the quality of each seed."""
    labels = np.unique(tasks, return_inverse=True)[1]
    policies = {
        "full information, follow the leader": ("full", 0.0),
        "bandit, Thompson Beta(1, 1)": ("thompson", 0.0),
        **{f"bandit, UCB c={c:g}": ("ucb", c) for c in UCB_C},
    }
    out: dict = {}
    for name, (policy, c) in policies.items():
        for told, groups in (("true task labels", labels), ("no task labels", 0 * labels)):
            for model_order, qq in zip(ORDERS, (q, q[:, ::-1]), strict=True):
                out.setdefault(name, {})[f"{told}, {model_order}"] = [
                    online(qq, groups, s, policy, c) for s in seeds
                ]
    return out


def print_online(out: dict, seeds: list[int]) -> None:
    """Mean ± sd over runs. "both" pools the two model orders (ties are broken at random,
    so the order only adds draws); UCB's best constant in hindsight is chosen on it."""
    told = ("true task labels", "no task labels")

    def pooled(row: dict, t: str) -> list[float]:
        return row[f"{t}, file order"] + row[f"{t}, reversed"]

    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ±{statistics.pstdev(values):.3f}"

    print(f"\nonline bounds over seeds {seeds} (the replays' query orders), mean ± sd:")
    print("| | " + " | ".join(f"{t}, {o}" for t in told for o in (*ORDERS, "both")) + " |")
    print("|---|" + "---|" * 3 * len(told))
    for name, row in out.items():
        cells = [
            cell(v) for t in told for v in (*(row[f"{t}, {o}"] for o in ORDERS), pooled(row, t))
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    best = []
    for t in told:
        ucb = {name.split("=")[-1]: pooled(row, t) for name, row in out.items() if "UCB" in name}
        c = max(ucb, key=lambda k: statistics.mean(ucb[k]))
        best += ["", "", f"{cell(ucb[c])} (c={c})"]
    print(f"| bandit, UCB best c in hindsight | {' | '.join(best)} |")


def variants(data: ReplayData, tasks: np.ndarray) -> dict[str, ReplayData]:
    n = len(data)
    k = len(data.models)
    q = data.quality
    best = int(np.argmax(q.mean(axis=0)))
    kinds = sorted(set(tasks.tolist()))
    task_best = {int(np.argmax(q[tasks == t].mean(axis=0))) for t in kinds}
    four = sorted(np.random.default_rng(0).choice(k, size=4, replace=False).tolist())
    out = {
        "full": data,
        "first half": rows(data, np.arange(n) < n // 2),
        "second half": rows(data, np.arange(n) >= n // 2),
        "models reversed": models(data, list(range(k))[::-1]),
    }
    for t in kinds:
        out[f"without {t}"] = rows(data, tasks != t)
    out["without the best model"] = models(data, [i for i in range(k) if i != best])
    out["without every task's best"] = models(data, [i for i in range(k) if i not in task_best])
    out["random 4 models"] = models(data, four)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", default=MODEL7)
    parser.add_argument("--algorithms", nargs="+", default=[DEFAULT_ALGORITHM])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", action="store_true", help="the robustness gate")
    parser.add_argument("--ceiling", action="store_true", help="offline-trained routers")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    data = load(args.log)
    tasks = tasks_of(args.log, len(data))
    if args.ceiling:
        offline = ceiling(data, tasks)
        print("trained offline on half the log (every model's outcome), scored on the other half:")
        for name, value in offline.items():
            print(f"  {name:45s} {value:.4f}")
        bounds = online_bounds(data.quality, tasks, args.seeds)
        print_online(bounds, args.seeds)
        result_: dict = {"offline": offline, "online": bounds}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result_, fh, indent=2)
        return 0
    if args.variants:
        numbers: dict[str, dict[str, float]] = {}
        cases = variants(data, tasks)
        print(
            f"{'variant':28s} " + " ".join(f"{a:>18s}" for a in args.algorithms) + "  best single"
        )
        for name, d in cases.items():
            row = {
                a: statistics.mean(float(run(d, a, s).mean()) for s in args.seeds)
                for a in args.algorithms
            }
            row["best single"] = float(d.quality.mean(axis=0).max())
            numbers[name] = row
            print(
                f"{name:28s} "
                + " ".join(f"{row[a]:18.4f}" for a in args.algorithms)
                + f"  {row['best single']:.4f}",
                flush=True,
            )
        result: dict = numbers
    else:
        result = table(data, tasks, args.algorithms, args.seeds)
        print_table(result, args.seeds)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
