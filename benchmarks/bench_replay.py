"""Quality and cost of learned routing on the shipped real routing logs (mean of seeds 0-2).

    python benchmarks/bench_replay.py [--json OUT] [--seeds 0 1 2] [--quick]
    python benchmarks/bench_replay.py --variants [--embedding-backend onnx] [--seeds 0 1]
        [--algorithm cluster_thompson]

Claims checked (README, "Measured"):
- RouterBench ARC+Winogrande, 11 models, online, balanced preference: mean quality
  >= 0.80 at <= 10 % of always-GPT-4's mean cost.
- RouteLLM MMLU, 2 models, ``--sweep``: APGR >= 0.55 (random routing: 0.5).
Also every algorithm on RouterBench, for the comparison table. ``--quick`` uses the
first 3,000 MMLU queries instead of all 14,037.

``--variants`` is the quality gate for a change of embedding: on each log (RouterBench
hybrid balanced: quality and cost vs GPT-4; model7-mixed, ``--preference quality``, from
``--model7 PATH``; MMLU ``--sweep`` APGR) the full log, each half, and the models in
reverse order, so a difference is not one file's accident. Run it once per backend and
compare.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace as dc_replace

import _common  # also the offline environment

from conduit.engines.bandits import ALGORITHMS
from conduit.replay import DEFAULT_ALGORITHM, ReplayData, load, replay, shipped_log, sweep

ROUTERBENCH = "routerbench-arc-winogrande.jsonl.gz"
MMLU = "routellm-mmlu.jsonl.gz"


MODEL7 = "/work/shared/datasets/model7-mixed.jsonl.gz"


def variants_of(data: ReplayData, reverse: bool = True) -> dict[str, ReplayData]:
    n = len(data) // 2

    def part(rows: slice) -> ReplayData:
        return dc_replace(
            data, prompts=data.prompts[rows], quality=data.quality[rows], cost=data.cost[rows]
        )

    out = {"full": data, "first half": part(slice(0, n)), "second half": part(slice(n, None))}
    if reverse:
        out["models reversed"] = dc_replace(
            data, models=data.models[::-1], quality=data.quality[:, ::-1], cost=data.cost[:, ::-1]
        )
    return out


def gate(
    backend: str, seeds: list[int], model7: str, algorithm: str = DEFAULT_ALGORITHM
) -> dict[str, float]:
    """The variants' numbers for one embedding backend and policy (mean over ``seeds``)."""
    out: dict[str, float] = {}
    rb = load(shipped_log(ROUTERBENCH), embedding_backend=backend)  # type: ignore[arg-type]
    gpt4 = float(rb.cost[:, rb.models.index("gpt-4-1106-preview")].mean())
    for name, d in variants_of(rb).items():
        runs = [replay(d, algorithm=algorithm, seed=s) for s in seeds]
        out[f"routerbench {name}: quality"] = statistics.mean(r.policy.mean_quality for r in runs)
        out[f"routerbench {name}: cost vs GPT-4"] = (
            statistics.mean(r.policy.mean_cost or 0.0 for r in runs) / gpt4
        )
    if os.path.exists(model7):
        m7 = load(model7, embedding_backend=backend)  # type: ignore[arg-type]
        for name, d in variants_of(m7).items():
            runs = [replay(d, algorithm=algorithm, seed=s, preference="quality") for s in seeds]
            out[f"model7-mixed {name}: quality"] = statistics.mean(
                r.policy.mean_quality for r in runs
            )
    mmlu = load(shipped_log(MMLU), embedding_backend=backend)  # type: ignore[arg-type]
    for name, d in variants_of(mmlu, reverse=False).items():  # two models: order-free
        out[f"mmlu {name}: APGR"] = statistics.mean(
            sweep(d, algorithm=algorithm, seed=s).apgr or 0.0 for s in seeds
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, seeds=True, quick="first 3,000 MMLU queries only")
    parser.add_argument("--embedding-backend", default="auto")
    parser.add_argument("--variants", action="store_true", help="the embedding quality gate")
    parser.add_argument("--model7", default=MODEL7, help="model7-mixed log for --variants")
    parser.add_argument(
        "--algorithm", default=DEFAULT_ALGORITHM, help="the policy --variants judges"
    )
    args = parser.parse_args(argv)
    if args.variants:
        numbers = gate(args.embedding_backend, args.seeds, args.model7, args.algorithm)
        for key, value in numbers.items():
            print(f"{key:<45} {value:.4f}")
        _common.write_json(args.json, numbers)
        return 0
    out: dict[str, object] = {"seeds": args.seeds, "default_algorithm": DEFAULT_ALGORITHM}

    t0 = time.perf_counter()
    rb = load(shipped_log(ROUTERBENCH), embedding_backend=args.embedding_backend, progress=True)
    out["routerbench_embedding_s"] = time.perf_counter() - t0
    gpt4 = rb.models.index("gpt-4-1106-preview")
    gpt4_cost = float(rb.cost[:, gpt4].mean())
    table = {}
    for algorithm in ALGORITHMS:
        runs = [replay(rb, algorithm=algorithm, seed=s) for s in args.seeds]
        q = statistics.mean(r.policy.mean_quality for r in runs)
        c = statistics.mean(r.policy.mean_cost or 0.0 for r in runs)
        table[algorithm] = {
            "mean_quality": q,
            "mean_cost": c,
            "cost_vs_gpt4": c / gpt4_cost,
            "per_seed_quality": [r.policy.mean_quality for r in runs],
        }
    base = runs[0].baselines
    out["routerbench"] = {
        "n": len(rb),
        "gpt4": {"mean_quality": float(rb.quality[:, gpt4].mean()), "mean_cost": gpt4_cost},
        "oracle": {"mean_quality": base.oracle.mean_quality, "mean_cost": base.oracle.mean_cost},
        "algorithms": table,
    }
    default = table[DEFAULT_ALGORITHM]
    rb_ok = default["mean_quality"] >= 0.80 and default["cost_vs_gpt4"] <= 0.10

    t0 = time.perf_counter()
    mmlu = load(
        shipped_log(MMLU),
        limit=3000 if args.quick else None,
        embedding_backend=args.embedding_backend,
        progress=True,
    )
    out["mmlu_embedding_s"] = time.perf_counter() - t0
    sweeps = [sweep(mmlu, seed=s, progress=True) for s in args.seeds]
    apgr = statistics.mean(s.apgr or 0.0 for s in sweeps)
    out["mmlu"] = {
        "n": len(mmlu),
        "apgr": apgr,
        "per_seed_apgr": [s.apgr for s in sweeps],
        "cpt50": statistics.mean(s.cpt50 or 1.0 for s in sweeps),
        "cpt80": statistics.mean(s.cpt80 or 1.0 for s in sweeps),
    }
    mmlu_ok = apgr >= 0.55

    print(f"RouterBench ARC+Winogrande, {len(rb)} queries, 11 models, seeds {args.seeds}")
    print(f"  always GPT-4: quality {out['routerbench']['gpt4']['mean_quality']:.3f}")  # type: ignore[index]
    print(
        f"  oracle:       quality {base.oracle.mean_quality:.3f} "
        f"at {(base.oracle.mean_cost or 0) / gpt4_cost:.1%} of GPT-4's cost"
    )
    print(f"  {'algorithm':22s} {'quality':>8s} {'cost vs GPT-4':>14s}   per seed")
    for name, row in table.items():
        seeds = " ".join(f"{q:.3f}" for q in row["per_seed_quality"])  # type: ignore[attr-defined]
        print(f"  {name:22s} {row['mean_quality']:8.3f} {row['cost_vs_gpt4']:14.1%}   {seeds}")
    print(
        f"  claim (default {DEFAULT_ALGORITHM}): quality >= 0.80 at <= 10% of GPT-4's cost: "
        f"{'MET' if rb_ok else 'NOT MET'}"
    )
    print(
        f"RouteLLM MMLU, {len(mmlu)} queries, 2 models: APGR {apgr:.3f} "
        f"(per seed {', '.join(f'{s.apgr:.3f}' for s in sweeps)}), "
        f"CPT(50%) {out['mmlu']['cpt50']:.1%}, CPT(80%) {out['mmlu']['cpt80']:.1%}"
    )  # type: ignore[index]
    print(f"  claim: APGR >= 0.55: {'MET' if mmlu_ok else 'NOT MET'}")
    _common.write_json(args.json, out)
    return 0 if rb_ok and mmlu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
