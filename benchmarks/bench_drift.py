"""Change over time: how many queries Conduit takes to follow a model that changed.

    python benchmarks/bench_drift.py [--seeds 0 1 2] [--logs ...] [--model7 PATH] [--json OUT]
                                     [--store sqlite]

For each log and seed, in the replay's order for that seed (the default ``hybrid``
policy, full feedback), the model the router prefers (the most chosen over the
1,000 queries before halfway, in a replay of the unchanged log) changes at halfway:

- ``quality``: its quality drops by 0.2 (each outcome kept with probability
  ``1 - 0.2 / mean``, so on 0/1 outcomes the mean drops by exactly 0.2 in expectation),
  preference ``quality``;
- ``cost``: its cost is multiplied by 3, preference ``balanced`` (logs with costs only).

Each change is replayed with change detection on and off. Reported:
- ``recover``: queries after the change until the share of the last 100 queries sent
  to the changed model falls below half its share before the change (None: never,
  within the second half);
- ``cost_known`` (cost variant): queries until the router's mean cost of the model is
  within 20 % of the model's true mean cost after the change;
- quality (and cost) of the second half, and the changes the detector raised;
- ``stationary``: the unchanged log with detection on, its quality and false alarms.

With ``--store sqlite`` every router keeps its state in a fresh SQLite store and syncs
every ``SYNC_EVERY`` queries (deterministically, from the replay loop): a forget then
takes effect at the next sync, through the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import uuid
from typing import Any

import _common  # noqa: F401  (the offline environment)
import numpy as np

from conduit._types import Preferences
from conduit.engines.router import Router
from conduit.replay import load, shipped_log
from conduit.replay._loop import DEFAULT_ALGORITHM, ReplayData

LOGS = ("routerbench-arc-winogrande.jsonl.gz", "routellm-mmlu.jsonl.gz")
MODEL7 = "/work/shared/datasets/model7-mixed.jsonl.gz"
DROP = 0.2
COST_FACTOR = 3.0
WINDOW = 100
BEFORE = 1000
#: With a store: queries between two syncs (the replay syncs explicitly).
SYNC_EVERY = 50
#: ``sqlite`` to replay with a state store (set by ``--store``), else None.
STORE: str | None = None


def replay(
    data: ReplayData, seed: int, prefs: Preferences, drift: bool, watch: int | None = None
) -> dict[str, Any]:
    """One online replay; the chosen model per step (and the router's mean cost of
    ``watch`` every 10 steps after halfway)."""
    router = Router(
        models=data.models,
        bandit_algorithm=DEFAULT_ALGORITHM,
        seed=seed,
        extractor=data.extractor,
        drift_detection=drift,
        **_store_options(),
    )
    if STORE is not None:
        router.start()
    order = np.random.default_rng(seed).permutation(len(data))
    chosen = np.empty(order.size, dtype=np.intp)
    index = {m: k for k, m in enumerate(data.models)}
    half = order.size // 2
    known: list[tuple[int, float]] = []
    for step, row in enumerate(order):
        decision = router.route_sync(data.prompts[row], preferences=prefs)
        k = index[decision.selected_model]
        cost = float(data.cost[row, k])
        router.update_sync(
            decision.decision_id,
            quality=float(data.quality[row, k]),
            cost=None if np.isnan(cost) else cost,
        )
        chosen[step] = k
        if router.store_sync is not None and step % SYNC_EVERY == SYNC_EVERY - 1:
            router.store_sync.sync_now()
        if watch is not None and step >= half and step % 10 == 0:
            mean = router.stats().models[data.models[watch]].mean_cost
            known.append((step - half, np.nan if mean is None else mean))
    q = data.quality[order, chosen]
    c = data.cost[order, chosen]
    alarms = router.drift.alarms() if router.drift is not None else {}
    router.close()
    return {
        "order": order,
        "chosen": chosen,
        "quality_after": float(q[half:].mean()),
        "quality": float(q.mean()),
        "cost_after": float(np.nanmean(c[half:])) if np.isfinite(c).any() else None,
        "alarms": {m: a for m, a in alarms.items() if any(a.values())},
        "known": known,
    }


def _store_options() -> dict[str, Any]:
    """A fresh SQLite state store (its own namespace), or nothing without ``--store``."""
    if STORE is None:
        return {}
    path = f"{tempfile.gettempdir()}/conduit-bench-drift.db"
    return {
        "state_store": f"sqlite:///{path}?namespace=n{uuid.uuid4().hex[:12]}",
        "sync_interval": 86_400.0,
    }


def recover(chosen: np.ndarray, model: int) -> tuple[float, int | None]:
    """The model's share before halfway, and queries after it until the share of the last
    WINDOW queries is below half of that (None: never)."""
    half = chosen.size // 2
    mine = (chosen == model).astype(float)
    before = float(mine[half - BEFORE : half].mean())
    for t in range(half + 1, chosen.size + 1):
        if mine[max(half, t - WINDOW) : t].mean() < before / 2 and t - half >= 10:
            return before, t - half
    return before, None


def changed(data: ReplayData, order: np.ndarray, model: int, kind: str, seed: int) -> ReplayData:
    """The log with ``model`` changed from halfway (in the replay order) on."""
    after = order[order.size // 2 :]
    quality, cost = data.quality.copy(), data.cost.copy()
    if kind == "quality":
        mean = float(data.quality[:, model].mean())
        keep = max(0.0, 1.0 - DROP / mean) if mean > 0 else 0.0
        rng = np.random.default_rng(10_000 + seed)
        quality[after, model] *= rng.random(after.size) < keep
    else:
        cost[after, model] *= COST_FACTOR
    return dataclasses.replace(data, quality=quality, cost=cost)


def bench_log(data: ReplayData, seeds: list[int]) -> dict[str, Any]:
    has_cost = bool(np.isfinite(data.cost).any())
    out: dict[str, Any] = {"n": len(data), "quality": [], "cost": [], "stationary": []}
    for seed in seeds:
        for kind in ("quality", "cost") if has_cost else ("quality",):
            prefs = Preferences.of("quality" if kind == "quality" else "balanced")
            base_off = replay(data, seed, prefs, drift=False)
            base_on = replay(data, seed, prefs, drift=True)
            chosen = base_off["chosen"]
            half = chosen.size // 2
            model = int(np.bincount(chosen[half - BEFORE : half]).argmax())
            out["stationary"].append(
                {
                    "seed": seed,
                    "preference": prefs.preset,
                    "quality_off": base_off["quality"],
                    "quality_on": base_on["quality"],
                    "false_alarms": base_on["alarms"],
                }
            )
            print(f"  stationary {kind} seed {seed}: {out['stationary'][-1]}", flush=True)
            new = changed(data, base_off["order"], model, kind, seed)
            truth = float(np.nanmean(new.cost[base_off["order"][half:], model]))
            row: dict[str, Any] = {"seed": seed, "model": data.models[model]}
            for drift in (False, True):
                r = replay(new, seed, prefs, drift=drift, watch=model if kind == "cost" else None)
                share, steps = recover(r["chosen"], model)
                name = "on" if drift else "off"
                row["share_before"] = share
                row[f"recover_{name}"] = steps
                row[f"quality_after_{name}"] = r["quality_after"]
                row[f"cost_after_{name}"] = r["cost_after"]
                row[f"alarms_{name}"] = r["alarms"]
                if kind == "cost":
                    row[f"cost_known_{name}"] = next(
                        (s for s, m in r["known"] if abs(m / truth - 1.0) <= 0.2), None
                    )
            print(f"  {kind} seed {seed}: {row}", flush=True)
            out[kind].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    global STORE, SYNC_EVERY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--logs", nargs="+", default=list(LOGS))
    parser.add_argument("--model7", default=MODEL7, help="model7-mixed log ('' to skip)")
    parser.add_argument("--embedding-backend", default="auto")
    parser.add_argument("--store", choices=["sqlite"], help="replay with a state store")
    parser.add_argument("--sync-every", type=int, default=SYNC_EVERY, help="queries per sync")
    args = parser.parse_args(argv)
    STORE, SYNC_EVERY = args.store, args.sync_every
    out: dict[str, Any] = {"seeds": args.seeds, "store": args.store, "sync_every": SYNC_EVERY}
    paths = [(name, shipped_log(name)) for name in args.logs]
    if args.model7:
        paths.append(("model7-mixed", args.model7))
    for name, path in paths:
        t0 = time.perf_counter()
        data = load(path, embedding_backend=args.embedding_backend)
        print(f"{name}: {len(data)} queries loaded in {time.perf_counter() - t0:.0f} s")
        out[name] = bench_log(data, args.seeds)
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
