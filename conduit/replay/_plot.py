"""The learning-curve plot of a replay (matplotlib, the optional ``plot`` extra).

Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot), so it needs no
display and leaves matplotlib's global state alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conduit._errors import MissingDependencyError, ValidationError
from conduit.replay._report import ReplayResult, SweepResult

__all__ = ["plot_replay", "require_matplotlib"]

_INSTALL = "pip install 'conduit[plot]'"


def require_matplotlib() -> Any:
    """matplotlib's ``Figure`` class, or a :class:`MissingDependencyError` with the pip command."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"plotting needs matplotlib: {_INSTALL}") from exc
    return Figure


def _relative(cost: float | None, reference: float | None) -> float:
    if cost is None or reference is None or reference <= 0:
        return float("nan")
    return cost / reference


def plot_replay(
    result: ReplayResult, path: str | os.PathLike[str], *, sweep: SweepResult | None = None
) -> Path:
    """Save quality and cost (relative to the best single model) over time to ``path``.

    The quality panel shows the oracle's and the best single model's levels and
    marks the policy's phase switch (hybrid: to LinUCB), if any. With ``sweep``
    a third panel draws the cost-quality curve against every single model.
    """
    figure_cls = require_matplotlib()
    b, curve = result.baselines, result.learning
    best = b.best_single
    panels = 3 if sweep is not None else 2
    fig = figure_cls(figsize=(5.0 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels)
    steps = list(curve.step)

    ax = axes[0]
    ax.plot(steps, curve.mean_quality, color="C0", label=f"conduit ({result.policy.algorithm})")
    ax.axhline(b.oracle.mean_quality, color="C2", linestyle="--", label="oracle")
    ax.axhline(best.mean_quality, color="C3", linestyle=":", label=f"{best.model}")
    ax.axhline(b.random.mean_quality, color="0.5", linestyle="-.", label="random model")
    ax.set_xlabel("queries seen")
    ax.set_ylabel(f"mean quality (last {curve.window} queries)")
    ax.set_title("quality")

    ax_cost = axes[1]
    ax_cost.plot(
        steps,
        [_relative(c, best.mean_cost) for c in curve.mean_cost],
        color="C0",
        label=f"conduit ({result.policy.algorithm})",
    )
    ax_cost.axhline(1.0, color="C3", linestyle=":", label=f"{best.model}")
    ax_cost.axhline(
        _relative(b.oracle.mean_cost, best.mean_cost), color="C2", linestyle="--", label="oracle"
    )
    ax_cost.set_xlabel("queries seen")
    ax_cost.set_ylabel(f"mean cost / {best.model}'s (last {curve.window} queries)")
    ax_cost.set_title("cost relative to the best single model")

    if result.policy.switch_at is not None:
        for a in (ax, ax_cost):
            a.axvline(result.policy.switch_at, color="0.3", linewidth=0.8, label="phase switch")
    ax.legend(fontsize="small")
    ax_cost.legend(fontsize="small")

    if sweep is not None:
        ax_sweep = axes[2]
        by_cost = sorted(
            (_relative(p.mean_cost, best.mean_cost), p.mean_quality) for p in sweep.points
        )
        ax_sweep.plot(
            [cost for cost, _ in by_cost],
            [quality for _, quality in by_cost],
            marker="o",
            color="C0",
            label=f"conduit ({sweep.algorithm}), cost weights",
        )
        for model, level in sweep.baselines.single.items():
            ax_sweep.scatter(
                _relative(level.mean_cost, best.mean_cost), level.mean_quality, color="0.4"
            )
            ax_sweep.annotate(
                model,
                (_relative(level.mean_cost, best.mean_cost), level.mean_quality),
                fontsize="x-small",
            )
        ax_sweep.scatter(
            _relative(b.oracle.mean_cost, best.mean_cost), b.oracle.mean_quality,
            color="C2", marker="*", s=80, label="oracle",
        )  # fmt: skip
        ax_sweep.set_xlabel(f"mean cost / {best.model}'s")
        ax_sweep.set_ylabel("mean quality")
        ax_sweep.set_title("cost-quality curve")
        ax_sweep.legend(fontsize="small")

    fig.suptitle(f"conduit replay: {result.source}, {result.n} queries, seed {result.seed}")
    target = Path(path)
    try:
        fig.savefig(target, dpi=110)
    except (OSError, ValueError) as exc:  # ValueError: a file type matplotlib cannot write
        raise ValidationError(f"cannot write the plot to {target}: {exc}") from exc
    return target
