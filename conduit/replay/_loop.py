"""The replay loop: stream a routing log through a learning router with bandit feedback.

Each logged query carries every model's real outcome, so the router can be shown
only the outcome of the model it chose (as in production), while the oracle,
every single model and random routing are scored exactly on the same queries.

Features are computed once per log (:func:`load`) into the shared extractor's
cache, so a sweep or several seeds reuse them.

With ``store=``, a replay also fills a state store as production traffic would
(learned state and one history record per decision, with its explanation), so
``conduit stats`` and ``conduit dashboard`` have something to show without
LiteLLM. Replayed decisions get synthetic, increasing times: query ``i`` of
``n`` at ``now - (n - i) * time_step``, as if the log had been served over the
time just past, one query every ``time_step`` seconds; a replay into a namespace
whose history reaches past that start continues after its last record instead,
so replays one after another read as one after another.

With :class:`Labels`, quality feedback is sparse and noisy, as it is in
production: only a ``rate`` share of decisions gets its quality (uniformly, or
more where the router is unsure, by :class:`conduit.judge.Sampler`), and a
``noise`` share of those is flipped (``1 - q``); cost is always learned.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from conduit import _validate
from conduit._errors import ConfigurationError, InvalidQueryError, LogFormatError
from conduit._types import Preferences, TargetStats
from conduit.engines.bandits import ALGORITHMS, OracleBandit
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._cache import text_key
from conduit.engines.features._extractor import (
    DEFAULT_MODEL,
    Backend,
    FeatureExtractor,
    make_embedder,
)
from conduit.engines.router import Router
from conduit.judge import Sampler
from conduit.replay import _cache
from conduit.replay import _metrics as metrics
from conduit.replay._report import (
    Baselines,
    LearningCurve,
    Level,
    PolicySummary,
    ReplayResult,
    SweepPoint,
    SweepResult,
)
from conduit.replay.log import iter_log, shipped_log
from conduit.stores import Store, open_store

__all__ = [
    "ALL_LABELS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_PREFERENCE",
    "DEFAULT_TIME_STEP",
    "SWEEP_COST_WEIGHTS",
    "Labels",
    "ReplayData",
    "baselines",
    "load",
    "replay",
    "sweep",
]

#: The policy ``conduit replay`` runs unless told otherwise.
DEFAULT_ALGORITHM = "hybrid"
#: The preset each replayed query carries unless a cost weight is given.
DEFAULT_PREFERENCE = "balanced"
#: Cost weights of ``--sweep``: a fixed grid from "quality only" to "cost dominates",
#: the same for every log (not tuned to one).
SWEEP_COST_WEIGHTS: tuple[float, ...] = (
    0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
#: ``sweep`` bisects neighbouring cost weights whose strong-model shares differ by more.
REFINE_GAP = 0.1
#: Points kept of the learning curve (it is sampled evenly; the last query always).
CURVE_POINTS = 200
#: Seconds between replayed queries in a store's history (see the module docstring).
DEFAULT_TIME_STEP = 60.0


@dataclass(frozen=True)
class Labels:
    """Which decisions get their quality, and how wrong the label may be.

    ``rate``: the share of decisions labelled; ``noise``: the share of labels flipped
    (``1 - q``); ``uncertain``: sample more where the router is unsure (else uniformly).
    """

    rate: float = 1.0
    noise: float = 0.0
    uncertain: bool = False

    def __post_init__(self) -> None:
        for name in ("rate", "noise"):
            _validate.number(f"feedback {name}", getattr(self, name), low=0.0, high=1.0)


#: Every decision's true quality: the replay's default.
ALL_LABELS = Labels()


@dataclass(frozen=True, eq=False)
class ReplayData:
    """A routing log ready to replay: outcomes as arrays, features already computed.

    ``quality`` and ``cost`` have one row per query and one column per model (in
    ``models`` order); an unknown cost is NaN. ``extractor`` holds every prompt's
    features in its cache, so routers built on it never embed again.
    """

    source: str
    models: tuple[str, ...]
    prompts: tuple[str, ...]
    quality: FloatArray = field(repr=False)
    cost: FloatArray = field(repr=False)
    extractor: FeatureExtractor = field(repr=False)

    def __len__(self) -> int:
        return len(self.prompts)

    def head(self, limit: int) -> ReplayData:
        """The first ``limit`` queries (sharing the extractor and its cache)."""
        _check_limit(limit)
        return replace(
            self,
            prompts=self.prompts[:limit],
            quality=self.quality[:limit],
            cost=self.cost[:limit],
        )


DataLike: TypeAlias = str | os.PathLike[str] | ReplayData | None


def _check_limit(limit: object) -> None:
    _validate.integer("limit", limit, low=0, strict_low=True)


def _check_seed(seed: object) -> int:
    return _validate.integer("seed", seed, low=0)


def _check_algorithm(algorithm: object) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ConfigurationError(
            f"unknown algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}"
        )
    return algorithm


def _resolve(data: str | os.PathLike[str] | None) -> Path:
    """A path, or the name of a log shipped in ``conduit/data``; None is the default log."""
    if data is None:
        return shipped_log()
    path = Path(data)
    if not path.exists() and path.name == str(data):
        try:
            return shipped_log(path.name)
        except LogFormatError:
            pass
    return path


def _read(
    path: Path, limit: int | None
) -> tuple[tuple[str, ...], list[str], FloatArray, FloatArray]:
    """Models, prompts and outcome arrays, streamed: no parsed record is kept."""
    models: tuple[str, ...] = ()
    prompts: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    for record in iter_log(path):
        if not models:
            models = tuple(record.outcomes)
        outcomes = [record.outcomes[m] for m in models]
        prompts.append(record.prompt)
        quality.append([o.quality for o in outcomes])
        cost.append([math.nan if o.cost is None else o.cost for o in outcomes])
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise LogFormatError(f"{path}: the log holds no records")
    return models, prompts, np.array(quality), np.array(cost)


def load(
    data: str | os.PathLike[str] | None = None,
    *,
    limit: int | None = None,
    embedding_backend: Backend = "auto",
    embedding_model: str = DEFAULT_MODEL,
    progress: bool = False,
    cache: bool | str | os.PathLike[str] = True,
) -> ReplayData:
    """Read a log (the first ``limit`` queries) and compute every prompt's features once.

    ``data`` is a path, the name of a shipped log, or None for the shipped
    RouterBench log (11 models). ``cache`` keeps the features on disk, keyed by the
    log's content, the extractor and ``limit``: True puts them under the user cache
    directory, a path under that folder, False nowhere. A second load of the same
    log then embeds nothing.
    """
    if limit is not None:
        _check_limit(limit)
    if not isinstance(cache, (bool, str, os.PathLike)):
        raise ConfigurationError(f"cache must be a bool or a folder path, got {cache!r}")
    path = _resolve(data)
    models, prompts, quality, cost = _read(path, limit)
    extractor = FeatureExtractor(
        embedder=make_embedder(
            embedding_model, embedding_backend, threads=min(os.cpu_count() or 1, 4)
        ),
        cache_size=len(prompts) + 1,
    )
    file: Path | None = None
    if cache is not False:
        folder = _cache.default_dir() if cache is True else Path(cache)
        key = _cache.cache_key(_cache.log_digest(path), extractor.name, extractor.max_chars, limit)
        file = folder / f"{key}.npy"
        found = _cache.read_features(file, (len(prompts), extractor.dim))
        if found is not None:
            for prompt, row in zip(prompts, found, strict=True):
                extractor.cache.put(text_key(prompt), row)
            file = None
    if file is not None or cache is False:
        features = np.empty((len(prompts), extractor.dim))
        chunk = 64  # progress updates every few seconds even with the ONNX model
        with tqdm(
            total=len(prompts), desc="embedding", unit="query", disable=not progress, leave=False
        ) as bar:
            for start in range(0, len(prompts), chunk):
                batch = prompts[start : start + chunk]
                features[start : start + len(batch)] = extractor.features_batch(batch)
                bar.update(len(batch))
        if file is not None:
            _cache.write_features(file, features)
    return ReplayData(
        source=path.name,
        models=models,
        prompts=tuple(prompts),
        quality=quality,
        cost=cost,
        extractor=extractor,
    )


def _data(
    data: DataLike,
    limit: int | None,
    embedding_backend: Backend,
    embedding_model: str,
    progress: bool,
) -> ReplayData:
    if isinstance(data, ReplayData):
        return data if limit is None else data.head(limit)
    return load(
        data,
        limit=limit,
        embedding_backend=embedding_backend,
        embedding_model=embedding_model,
        progress=progress,
    )


def _preferences(
    preference: Preferences | str | None,
    cost_weight: float | None,
    targets: dict[str, float | None] | None = None,
) -> Preferences:
    """The preferences every replayed query carries; ``targets``: a budget or quality floor
    on top (with ``cost_weight``, where the controller starts)."""
    given = {k: v for k, v in (targets or {}).items() if v is not None}
    if given:
        base = _preferences(preference, cost_weight)
        try:
            return Preferences(**{**base.model_dump(), **given})
        except ValueError as exc:  # InvalidQueryError: the target's own message
            raise ConfigurationError(f"invalid target {given}: {exc}") from None
    if cost_weight is None:
        try:
            return Preferences.of(preference if preference is not None else DEFAULT_PREFERENCE)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    if preference is not None:
        raise ConfigurationError("give a preference or a cost_weight, not both")
    if not _validate.is_number(cost_weight):
        raise ConfigurationError(f"cost_weight must be a number, got {cost_weight!r}")
    try:
        return Preferences(quality=1.0, cost=float(cost_weight), latency=0.0)
    except InvalidQueryError as exc:
        raise ConfigurationError(
            f"cost_weight must be a finite number in [0, 100], got {cost_weight!r}"
        ) from exc


# -- baselines ---------------------------------------------------------------------------------
def baselines(data: ReplayData) -> Baselines:
    """The oracle, every single model, the best single, the cheapest and random, exactly."""
    q, c, models = data.quality, data.cost, data.models
    rows = np.arange(len(data))
    pick = metrics.oracle_choices(q, c)
    single = {
        m: Level(float(q[:, k].mean()), metrics.mean_cost(c[:, k]), model=m)
        for k, m in enumerate(models)
    }

    def cost_key(level: Level) -> float:
        return math.inf if level.mean_cost is None else level.mean_cost

    levels = list(single.values())
    best = min(levels, key=lambda lv: (-lv.mean_quality, cost_key(lv)))
    priced = [lv for lv in levels if lv.mean_cost is not None]
    cheapest = min(priced, key=lambda lv: (cost_key(lv), -lv.mean_quality)) if priced else None
    random_cost = [lv.mean_cost for lv in priced if lv.mean_cost is not None]
    return Baselines(
        oracle=Level(float(q[rows, pick].mean()), metrics.mean_cost(c[rows, pick])),
        best_single=best,
        cheapest=cheapest,
        random=Level(
            float(np.mean([lv.mean_quality for lv in levels])),
            float(np.mean(random_cost)) if random_cost else None,
        ),
        single=single,
    )


# -- the loop ----------------------------------------------------------------------------------
class _ReplayClock:
    """Synthetic time for a replay's history: step ``i`` at ``start + i * step``."""

    def __init__(self, start: float, step: float) -> None:
        self.start, self.step, self.now = start, step, start

    def at(self, i: int) -> None:
        self.now = self.start + i * self.step

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class _Trace:
    order: NDArray[np.intp]
    chosen: NDArray[np.intp]
    switch_at: int | None
    labelled: int = 0
    target: TargetStats | None = None


def _run(
    router: Router,
    data: ReplayData,
    order: NDArray[np.intp],
    preferences: Preferences,
    bar: tqdm[Any] | None = None,
    clock: _ReplayClock | None = None,
    labels: Labels = ALL_LABELS,
    seed: int = 0,
) -> _Trace:
    """Route each query in ``order``; tell the router only the chosen model's outcome."""
    index = {m: k for k, m in enumerate(data.models)}
    sampler = Sampler(labels.rate, uncertain=labels.uncertain, seed=seed + 104_729)
    flips = np.random.default_rng(seed + 15_485_863)
    labelled = np.zeros(order.size, dtype=bool)
    chosen = np.empty(order.size, dtype=np.intp)
    oracle = router.bandit if isinstance(router.bandit, OracleBandit) else None
    first_phase: str | None = None
    switch_at: int | None = None
    for step, row in enumerate(order):
        if clock is not None:
            clock.at(step)
        if oracle is not None:
            oracle.reveal(dict(zip(data.models, data.quality[row].tolist(), strict=True)))
        decision = router.route_sync(data.prompts[row], preferences=preferences)
        k = index[decision.selected_model]
        cost = float(data.cost[row, k])
        true = float(data.quality[row, k])
        quality: float | None = true
        if labels != ALL_LABELS:
            labelled[step] = sampler.sample(decision)
            flip = flips.random() < labels.noise
            quality = (1.0 - true if flip else true) if labelled[step] else None
        if quality is not None or not math.isnan(cost):
            router.update_sync(
                decision.decision_id,
                quality=quality,
                cost=None if math.isnan(cost) else cost,
            )
        chosen[step] = k
        if first_phase is None:
            first_phase = decision.algorithm
        elif switch_at is None and decision.algorithm != first_phase:
            switch_at = step + 1
        if bar is not None:
            bar.update(1)
    if labels == ALL_LABELS:
        labelled[:] = True
    target = None if preferences.target is None else router.stats().targets.get(preferences.target)
    return _Trace(
        order=order,
        chosen=chosen,
        switch_at=switch_at,
        labelled=int(labelled.sum()),
        target=target,
    )


def _replay_once(
    data: ReplayData,
    algorithm: str,
    preferences: Preferences,
    seed: int,
    bar: tqdm[Any] | None,
    store: Store | None = None,
    time_step: float = DEFAULT_TIME_STEP,
    labels: Labels = ALL_LABELS,
) -> _Trace:
    router = Router(
        models=data.models,
        bandit_algorithm=algorithm,
        seed=seed,
        extractor=data.extractor,
        state_store=store,
        sync_interval=1.0,
    )
    order = np.random.default_rng(seed).permutation(len(data))
    if store is None:
        return _run(router, data, order, preferences, bar, labels=labels, seed=seed)
    start = time.time() - len(data) * time_step
    latest = store.history(limit=1)
    if latest and latest[0].time >= start:
        start = latest[0].time + time_step
    clock = _ReplayClock(start, time_step)
    try:
        router.start(wait=0, clock=clock)
        router.sync()  # a store that is down, or holds another router's state, fails here
        trace = _run(router, data, order, preferences, bar, clock, labels=labels, seed=seed)
        router.sync()  # everything learned and every record written, or an error
    finally:
        router.close()
    return trace


def _learning_curve(quality: FloatArray, cost: FloatArray) -> LearningCurve:
    n = quality.size
    window = max(1, round(0.1 * n))
    q = metrics.windowed_mean(quality, window)
    c = metrics.windowed_mean(cost, window)
    steps = np.unique(np.linspace(0, n - 1, num=min(n, CURVE_POINTS)).round().astype(int))
    return LearningCurve(
        window=window,
        step=tuple(int(i) + 1 for i in steps),
        mean_quality=tuple(float(q[i]) for i in steps),
        mean_cost=tuple(None if math.isnan(c[i]) else float(c[i]) for i in steps),
    )


def replay(
    data: DataLike = None,
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    preference: Preferences | str | None = None,
    cost_weight: float | None = None,
    budget: float | None = None,
    budget_usd: float | None = None,
    quality_floor: float | None = None,
    seed: int = 0,
    limit: int | None = None,
    embedding_backend: Backend = "auto",
    embedding_model: str = DEFAULT_MODEL,
    progress: bool = False,
    store: Store | str | None = None,
    time_step: float = DEFAULT_TIME_STEP,
    labels: Labels = ALL_LABELS,
) -> ReplayResult:
    """Replay a log through a fresh router in seeded random order, with bandit feedback.

    ``data`` is a path, a shipped log's name, a :class:`ReplayData` from
    :func:`load` (features reused), or None for the shipped RouterBench log.
    Every query carries ``preference`` (a preset name, default ``balanced``) or,
    given ``cost_weight`` W, ``Preferences(quality=1, cost=W, latency=0)``; ``budget``
    (a fraction of always using the dearest model's cost), ``budget_usd`` or
    ``quality_floor`` (a fraction of the best model's learned quality) adds that target,
    met online by the router's controller (the result's ``policy.target`` says how well).
    ``store`` (a :class:`~conduit.stores.Store` or URL) receives the learned state
    and a history record per decision, ``time_step`` seconds apart; the router
    starts from what the store's namespace has already learned. ``labels`` makes
    quality feedback sparse and noisy (:class:`Labels`).
    """
    algorithm = _check_algorithm(algorithm)
    seed = _check_seed(seed)
    prefs = _preferences(
        preference,
        cost_weight,
        {"budget": budget, "budget_usd": budget_usd, "quality_floor": quality_floor},
    )
    _validate.number(
        "time_step", time_step, low=0, strict_low=True, what="a positive number of seconds"
    )
    loaded = _data(data, limit, embedding_backend, embedding_model, progress)
    target = open_store(store) if isinstance(store, str) else store
    try:
        with tqdm(
            total=len(loaded), desc="replay", unit="query", disable=not progress, leave=False
        ) as bar:
            trace = _replay_once(
                loaded, algorithm, prefs, seed, bar, target, float(time_step), labels
            )
    finally:
        if isinstance(store, str) and target is not None:
            target.close()
    base = baselines(loaded)
    quality = loaded.quality[trace.order, trace.chosen]
    cost = loaded.cost[trace.order, trace.chosen]
    counts = np.bincount(trace.chosen, minlength=len(loaded.models))
    mean_quality = float(quality.mean())
    policy = PolicySummary(
        algorithm=algorithm,
        preferences=prefs.model_dump(exclude_none=True),
        mean_quality=mean_quality,
        mean_cost=metrics.mean_cost(cost),
        share={m: float(counts[k]) / len(loaded) for k, m in enumerate(loaded.models)},
        regret_vs_oracle=base.oracle.mean_quality - mean_quality,
        switch_at=trace.switch_at,
        target=trace.target,
    )
    return ReplayResult(
        source=loaded.source,
        n=len(loaded),
        models=loaded.models,
        seed=seed,
        policy=policy,
        baselines=base,
        learning=_learning_curve(quality, cost),
    )


def sweep(
    data: DataLike = None,
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    cost_weights: Sequence[float] = SWEEP_COST_WEIGHTS,
    refine: int = 8,
    seed: int = 0,
    limit: int | None = None,
    embedding_backend: Backend = "auto",
    embedding_model: str = DEFAULT_MODEL,
    progress: bool = False,
) -> SweepResult:
    """Replay once per cost weight (same queries, order and seed): the cost-quality curve.

    For a log of two models of different quality it also gives RouteLLM's APGR
    and CPT(50%)/CPT(80%), with the best single model as the strong one. Up to
    ``refine`` further weights bisect the largest jumps in the strong model's share.
    """
    _validate.integer("refine", refine, low=0)
    algorithm = _check_algorithm(algorithm)
    seed = _check_seed(seed)
    weights = sorted(float(w) for w in cost_weights)
    if not weights:
        raise ConfigurationError("cost_weights is empty")
    for weight in weights:  # validate every weight before any embedding work
        _preferences(None, weight)
    loaded = _data(data, limit, embedding_backend, embedding_model, progress)
    base = baselines(loaded)
    strong = str(base.best_single.model)
    k_strong = loaded.models.index(strong)
    weak = (
        next((m for m in loaded.models if m != strong), None) if len(loaded.models) == 2 else None
    )
    two = weak is not None and base.single[weak].mean_quality < base.best_single.mean_quality

    def point(weight: float, bar: tqdm[Any]) -> SweepPoint:
        bar.set_postfix(cost_weight=round(weight, 4))
        trace = _replay_once(loaded, algorithm, _preferences(None, weight), seed, bar)
        quality = float(loaded.quality[trace.order, trace.chosen].mean())
        return SweepPoint(
            cost_weight=weight,
            mean_quality=quality,
            mean_cost=metrics.mean_cost(loaded.cost[trace.order, trace.chosen]),
            strong_share=float(np.mean(trace.chosen == k_strong)),
            pgr=(
                metrics.pgr(
                    quality,
                    q_weak=base.single[weak].mean_quality,
                    q_strong=base.best_single.mean_quality,
                )
                if two and weak is not None
                else None
            ),
        )

    points: list[SweepPoint] = []
    with tqdm(
        total=len(loaded) * (len(weights) + refine),
        desc="sweep",
        unit="query",
        disable=not progress,
        leave=False,
    ) as bar:
        points = [point(weight, bar) for weight in weights]
        # Refine where the curve jumps: bisect the pair of neighbouring weights whose
        # strong-model shares differ most, while that gap exceeds REFINE_GAP. The grid
        # adapts to the log's own curve instead of being tuned to one.
        for _ in range(refine):
            gaps = [
                (abs(a.strong_share - b.strong_share), a.cost_weight, b.cost_weight)
                for a, b in itertools.pairwise(points)
            ]
            gap, low, high = max(gaps, default=(0.0, 0.0, 0.0))
            if gap <= REFINE_GAP:
                break
            points.append(point((low + high) / 2.0, bar))
            points.sort(key=lambda p: p.cost_weight)
    curve = [(p.strong_share, p.pgr) for p in points if p.pgr is not None]
    return SweepResult(
        source=loaded.source,
        n=len(loaded),
        models=loaded.models,
        seed=seed,
        algorithm=algorithm,
        strong=strong,
        weak=weak,
        baselines=base,
        points=tuple(points),
        apgr=metrics.apgr(curve) if two else None,
        cpt50=metrics.cpt(curve, 0.5) if two else None,
        cpt80=metrics.cpt(curve, 0.8) if two else None,
    )
