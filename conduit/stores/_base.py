"""The one protocol every state and history store implements.

A store keeps, per namespace (one logical router), the *global* learned state as
additive sufficient statistics (the bandit's and the outcome sums, per arm, per
key) plus the metadata that says which router learned them; and a history of
decisions and their outcomes.

Learning is exchanged only as deltas: :meth:`Store.push` adds a delta to the
global state atomically and returns the new global state, so writers never
overwrite each other. Every backend supplies the same few primitives (an atomic
read-modify-write of one namespace's blob, history rows); the merge rules live
here, once, so every backend behaves the same and one contract suite tests them.

The state blob is :func:`conduit._state.encode` text (versioned, checksummed); a
blob that fails to decode, or was learned by another kind of router, is refused
with :class:`~conduit._errors.StateError` and left untouched.
"""

from __future__ import annotations

import hashlib
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import ValidationError as PydanticValidationError

from conduit import _validate
from conduit._errors import ConfigurationError, StateError
from conduit._state import decode, encode
from conduit._types import Explanation
from conduit.engines._drift import keep_factor
from conduit.engines._outcomes import KEYS as OUTCOME_KEYS
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._metadata import METADATA_NAMES, metadata_features

__all__ = [
    "FORGET_KEYS",
    "HISTORY_FIELDS",
    "KIND",
    "PARTS",
    "QUERY_KINDS",
    "Epochs",
    "Forget",
    "HistoryRecord",
    "Learner",
    "Meta",
    "Snapshot",
    "Store",
    "Sums",
    "add_sums",
    "forget_sums",
    "prompt_hash",
    "query_kind",
    "scale_sums",
    "subtract_sums",
    "zero_like",
]

#: ``payload["kind"]`` of a store blob, so a file state or a foreign JSON is not taken for one.
KIND = "conduit-store-state"
#: The groups of statistics in a snapshot: the policy's and the router's outcome sums, the
#: router's counters (:mod:`conduit._counters`: quality labels by source, judge cost) and
#: the target controllers' (keyed by target, e.g. ``budget=0.2``). The last two are absent
#: from states stored before they existed, which read as having none.
PARTS = ("bandit", "outcomes", "counters", "targets")
_OPTIONAL_PARTS = frozenset({"counters", "targets"})
#: Replicas not heard from for this long are dropped from the de-duplication table.
REPLICA_TTL = 30 * 24 * 3600.0
#: Statistics that count events: never negative, and never fewer than a replica added.
COUNTS = ("n", "decisions", "quality_n", "cost_n", "latency_n", "successes", "failures")
#: Outcome sums of values that are never negative.
_NONNEGATIVE = (*COUNTS, "quality_sum", "cost_sum", "latency_sum")
#: Largest magnitude a stored statistic may have: far beyond any real traffic (1e6 USD per
#: outcome times 1e12 outcomes), far enough below float's range that sums cannot overflow.
MAX_STAT = 1e18
_PAYLOAD_KEYS = frozenset({"kind", "meta", "sums", "revision", "updated", "replicas", "epochs"})
#: Per stream of a model, the outcome sums a forget scales (the first is the count that
#: sets the factor); a quality forget scales the policy's statistics of the model too.
FORGET_KEYS = {
    "quality": ("quality_n", "quality_sum"),
    "cost": ("cost_n", "cost_sum", "cost_tokens", "cost_tokens2", "cost_cross"),
}
#: (model, stream) -> (epoch: forgets applied so far, sum of the logs of their factors).
Epochs = dict[tuple[str, str], tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Forget:
    """Scale ``model``'s statistics of ``stream`` in the global state down to ``keep``
    outcomes' worth, if the store is still at ``epoch`` for them (a forget based on an
    older epoch, i.e. a change another replica already forgot, is dropped)."""

    model: str
    stream: str
    epoch: int
    keep: float


def forget_sums(sums: Sums, model: str, stream: str, keep: float) -> tuple[Sums, float]:
    """``sums`` with ``model``'s ``stream`` statistics scaled to ``keep`` outcomes' worth, and
    the factor (1.0 when there is nothing to scale). The one place that says what a forget
    touches, for the store and every replica."""
    keys = FORGET_KEYS[stream]
    stats = sums.get("outcomes", {}).get(model)
    if stats is None or keys[0] not in stats:
        return sums, 1.0
    factor = keep_factor(float(np.sum(stats[keys[0]])), keep)
    return scale_sums(sums, model, stream, factor), factor


def scale_sums(sums: Sums, model: str, stream: str, factor: float) -> Sums:
    """``sums`` with ``model``'s ``stream`` statistics multiplied by ``factor`` (a copy)."""
    if factor == 1.0:
        return sums
    out = {part: dict(arms) for part, arms in sums.items()}
    keys = FORGET_KEYS[stream]
    stats = out.get("outcomes", {}).get(model)
    if stats is not None:
        out["outcomes"][model] = {
            k: np.asarray(v * factor) if k in keys else v for k, v in stats.items()
        }
    bandit = out.get("bandit", {}).get(model)
    if stream == "quality" and bandit is not None:
        out["bandit"][model] = {k: np.asarray(v * factor) for k, v in bandit.items()}
    return out


_META_KEYS = frozenset({"algorithm", "features", "dim", "params"})

#: part -> arm -> statistic -> array (0-d for scalars).
Sums = dict[str, dict[str, dict[str, FloatArray]]]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Meta:
    """Which kind of router learned a state; two routers may share one only if these agree."""

    algorithm: str
    features: str
    dim: int
    params: dict[str, Any] = field(default_factory=dict)

    def check(self, other: Meta, where: str) -> None:
        """Refuse (StateError) a state learned by another algorithm, feature set or dimension."""
        for name in ("algorithm", "features", "dim"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                raise StateError(
                    f"{where} was learned with {name}={theirs!r}, this router has {name}={mine!r}; "
                    "use another namespace or reset it"
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "features": self.features,
            "dim": self.dim,
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, value: Any) -> Meta:
        try:
            return cls(
                algorithm=str(value["algorithm"]),
                features=str(value["features"]),
                dim=int(value["dim"]),
                params=dict(value.get("params", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"store state has malformed metadata: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A namespace's global state: metadata, summed statistics and a revision counter."""

    meta: Meta
    sums: Sums
    revision: int = 0
    updated: float = 0.0
    replicas: dict[str, tuple[int, float]] = field(default_factory=dict)
    epochs: Epochs = field(default_factory=dict)
    """Forgets applied to the global sums, per (model, stream); see :class:`Forget`."""
    previous_seq: int | None = None
    """Set by :meth:`Store.push` only (never stored): the sequence number the store held
    for the pushing replica before this push, ``None`` if it did not know the replica."""
    forgotten: tuple[tuple[str, str], ...] = ()
    """Set by :meth:`Store.push` only (never stored): the (model, stream) of the forgets
    this push applied (the others were based on an older epoch, or a retry's)."""

    def encode(self) -> str:
        return encode(
            {
                "kind": KIND,
                "meta": self.meta.to_json(),
                "sums": _plain(self.sums),
                "revision": self.revision,
                "updated": self.updated,
                "replicas": {r: [seq, seen] for r, (seq, seen) in self.replicas.items()},
                # absent while empty: a state nobody forgot in reads as before epochs existed
                **({"epochs": _epochs_json(self.epochs)} if self.epochs else {}),
            }
        )

    @classmethod
    def decode(cls, text: str | bytes, where: str) -> Snapshot:
        try:
            payload = decode(text)
        except StateError as exc:
            raise StateError(f"{where}: {exc} (left in place for inspection)") from exc
        if payload.get("kind") != KIND:
            raise StateError(f"{where} is not a Conduit store state (left in place for inspection)")
        extra = sorted(set(payload) - _PAYLOAD_KEYS)
        if extra:
            raise StateError(f"{where} has unexpected fields {extra}")
        sums = payload.get("sums")
        if not isinstance(sums, dict) or not (
            set(PARTS) - _OPTIONAL_PARTS <= set(sums) <= set(PARTS)
        ):
            found = sorted(map(str, sums)) if isinstance(sums, dict) else type(sums).__name__
            raise StateError(f"{where} has statistics for {found}, expected {list(PARTS)}")
        sums = {"counters": {}, "targets": {}, **sums}
        meta_json = payload.get("meta")
        if isinstance(meta_json, dict) and set(meta_json) - _META_KEYS:
            raise StateError(
                f"{where} has unexpected metadata fields {sorted(set(meta_json) - _META_KEYS)}"
            )
        meta = Meta.from_json(meta_json)
        if meta.dim < 1:
            raise StateError(f"{where}: feature dimension must be >= 1, got {meta.dim}")
        checked: Sums = {}
        for part in PARTS:
            if not isinstance(sums[part], dict):
                raise StateError(f"{where}: statistics of {part} are malformed")
            checked[part] = {}
            for arm, stats in sums[part].items():
                if not isinstance(stats, dict):
                    raise StateError(f"{where}: statistics of {part}/{arm} are malformed")
                try:
                    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}
                except (TypeError, ValueError) as exc:
                    raise StateError(
                        f"{where}: statistics of {part}/{arm} are not arrays of numbers ({exc})"
                    ) from exc
                _check_stats(arrays, part, meta.dim, f"{where}: statistics of {part}/{arm}")
                checked[part][arm] = arrays
            keys = {frozenset(stats) for stats in checked[part].values()}
            if len(keys) > 1:
                raise StateError(f"{where}: models of {part} hold different statistics")
            if part == "outcomes" and keys and keys != {frozenset(OUTCOME_KEYS)}:
                raise StateError(
                    f"{where}: outcome statistics are {sorted(next(iter(keys)))}, "
                    f"expected {sorted(OUTCOME_KEYS)}"
                )
        try:
            replicas = {
                str(r): (int(v[0]), float(v[1])) for r, v in payload.get("replicas", {}).items()
            }
            revision, updated = int(payload.get("revision", 0)), float(payload.get("updated", 0.0))
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise StateError(f"{where}: malformed revision or replica table: {exc!r}") from exc
        if revision < 0 or any(seq < 0 for seq, _ in replicas.values()):
            raise StateError(f"{where}: revision and sequence numbers must be >= 0")
        epochs = _decode_epochs(payload.get("epochs", {}), where)
        return cls(meta, checked, revision, updated, replicas, epochs)

    def summary(self) -> dict[str, Any]:
        """What the state says, as plain JSON: metadata and, per model, decisions, feedback
        and mean quality, cost and latency (None where nothing was observed)."""

        def mean(total: float, n: float) -> float | None:
            return total / n if n > 0 else None

        models: dict[str, Any] = {}
        for arm, s in self.sums["outcomes"].items():
            v = {k: float(np.sum(x)) for k, x in s.items()}
            models[arm] = {
                "decisions": int(v.get("decisions", 0)),
                "feedback": int(v.get("quality_n", 0)),
                "mean_quality": mean(v.get("quality_sum", 0.0), v.get("quality_n", 0.0)),
                "mean_cost": mean(v.get("cost_sum", 0.0), v.get("cost_n", 0.0)),
                "mean_latency": mean(v.get("latency_sum", 0.0), v.get("latency_n", 0.0)),
                "cost_n": int(v.get("cost_n", 0)),
                "cost_sum": v.get("cost_sum", 0.0),
            }
        return {
            "algorithm": self.meta.algorithm,
            "features": self.meta.features,
            "dim": self.meta.dim,
            "params": self.meta.params,
            "revision": self.revision,
            "updated": self.updated,
            "replicas": len(self.replicas),
            "models": models,
            "counters": {
                k: float(np.sum(v)) for k, v in self.sums.get("counters", {}).get("*", {}).items()
            },
            "targets": target_summary(
                {
                    t: {k: float(np.sum(x)) for k, x in stats.items()}
                    for t, stats in self.sums.get("targets", {}).items()
                }
            ),
        }


def _epochs_json(epochs: Epochs) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for (model, stream), (epoch, log_scale) in sorted(epochs.items()):
        out.setdefault(model, {})[stream] = [epoch, log_scale]
    return out


def _decode_epochs(value: Any, where: str) -> Epochs:
    """The payload's ``epochs`` ({model: {stream: [epoch, log scale]}}), validated."""
    if not isinstance(value, dict):
        raise StateError(f"{where}: forget epochs are malformed")
    epochs: Epochs = {}
    for model, streams in value.items():
        if not isinstance(streams, dict):
            raise StateError(f"{where}: forget epochs of {model!r} are malformed")
        for stream, pair in streams.items():
            if stream not in FORGET_KEYS:
                raise StateError(f"{where}: forget epoch of unknown stream {stream!r}")
            try:
                epoch, log_scale = int(pair[0]), float(pair[1])
                if len(pair) != 2:
                    raise ValueError("expected [epoch, log scale]")
            except (TypeError, ValueError, IndexError, KeyError) as exc:
                raise StateError(f"{where}: forget epoch of {model}/{stream}: {exc!r}") from exc
            if epoch < 0 or not np.isfinite(log_scale) or log_scale > 0:
                raise StateError(
                    f"{where}: forget epoch of {model}/{stream} must be >= 0 with a log "
                    f"scale <= 0, got {pair!r}"
                )
            epochs[(str(model), stream)] = (epoch, log_scale)
    return epochs


def target_summary(sums: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per target, from its shared sums: goal, realised mean, cost weight and decisions.

    A budget's goal and realised value are mean cost per request (USD); a quality
    floor's, mean quality. The cost weight is the shared controller's, from its start
    at the default cost weight.
    """
    from conduit.engines._targets import target_view

    return {t: target_view(t, v) for t, v in sums.items()}


def _check_stats(arrays: Mapping[str, FloatArray], part: str, dim: int, where: str) -> None:
    """The invariants of one model's statistics: finite, in range, counts and sums of
    non-negative values >= 0, vectors and matrices of the feature dimension."""
    for key, value in arrays.items():
        name = key.rsplit(".", 1)[-1]
        if not np.all(np.isfinite(value)):
            raise StateError(f"{where} are not finite ({key})")
        if np.any(np.abs(value) > MAX_STAT):
            raise StateError(f"{where} are out of range ({key} beyond {MAX_STAT:g})")
        if name in _NONNEGATIVE and np.any(value < 0):
            raise StateError(f"{where} are negative ({key})")
        if part == "counters" and np.any(value < 0):
            raise StateError(f"{where} are negative ({key})")
        if part in ("outcomes", "counters", "targets") and value.ndim != 0:
            raise StateError(f"{where}: {key} must be a number, has shape {value.shape}")
        if part == "bandit" and any(n != dim for n in value.shape):
            raise StateError(
                f"{where}: {key} has shape {value.shape}, the feature dimension is {dim}"
            )


def _plain(sums: Sums) -> dict[str, Any]:
    """Scalars as JSON numbers (exact for float64), arrays as arrays."""
    return {
        part: {
            arm: {k: float(v) if np.ndim(v) == 0 else np.asarray(v) for k, v in stats.items()}
            for arm, stats in arms.items()
        }
        for part, arms in sums.items()
    }


def zero_like(sums: Sums) -> Sums:
    return {
        p: {a: {k: np.zeros_like(v) for k, v in s.items()} for a, s in arms.items()}
        for p, arms in sums.items()
    }


def _combine(a: Sums, b: Sums, sign: float, arms: Iterable[str] | None = None) -> Sums:
    """``a + sign * b`` per part, arm and key; an arm missing on one side counts as zeros.

    With ``arms``, only those arms are kept (the others are dropped, not zeroed).
    """
    keep = None if arms is None else set(arms)
    out: Sums = {}
    for part in PARTS:
        if part in _OPTIONAL_PARTS and part not in a and part not in b:
            continue
        left, right = a.get(part, {}), b.get(part, {})
        out[part] = {}
        for arm in dict.fromkeys([*left, *right]):
            if keep is not None and arm not in keep:
                continue
            x, y = left.get(arm), right.get(arm)
            if x is None and y is not None:
                out[part][arm] = {
                    k: np.asarray(sign * np.asarray(v, dtype=np.float64)) for k, v in y.items()
                }
            elif y is None and x is not None:
                out[part][arm] = {k: np.array(v, dtype=np.float64) for k, v in x.items()}
            elif x is not None and y is not None:
                if part == "counters":  # a newer version may count more: missing are zeros
                    zero = np.zeros(())
                    x = {k: x.get(k, zero) for k in {**x, **y}}
                    y = {k: y.get(k, zero) for k in x}
                if set(x) != set(y):
                    raise StateError(
                        f"statistics of {part}/{arm} have keys {sorted(x)} here, {sorted(y)} there"
                    )
                out[part][arm] = {}
                for k in x:
                    vx, vy = np.asarray(x[k], dtype=np.float64), np.asarray(y[k], dtype=np.float64)
                    if vx.shape != vy.shape:
                        raise StateError(
                            f"{part}/{arm}/{k} has shape {vx.shape} here, {vy.shape} there"
                        )
                    out[part][arm][k] = np.asarray(vx + sign * vy)
    return out


def add_sums(a: Sums, b: Sums, arms: Iterable[str] | None = None) -> Sums:
    """Elementwise ``a + b`` (the merge of two learners' statistics)."""
    return _combine(a, b, 1.0, arms)


def subtract_sums(a: Sums, b: Sums, arms: Iterable[str] | None = None) -> Sums:
    """Elementwise ``a - b`` (what was learned between two snapshots)."""
    return _combine(a, b, -1.0, arms)


def is_zero(sums: Sums) -> bool:
    return all(not np.any(v) for arms in sums.values() for s in arms.values() for v in s.values())


def prompt_hash(text: str) -> str:
    """sha256 of a prompt: lets history group repeated prompts without storing them.

    A lone surrogate (from a JSON ``"\\ud800"`` escape) is hashed as it stands.
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


#: What no backend can store in text: NUL (PostgreSQL) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(record: HistoryRecord) -> HistoryRecord:
    """``record`` with U+FFFD in place of characters a backend would refuse.

    One such character in a prompt or model name must not make a history batch
    fail on every retry, holding back all the history behind it.
    """
    dirty: dict[str, Any] = {
        name: _UNSTORABLE.sub("\ufffd", value)
        for name in ("decision_id", *HISTORY_FIELDS)
        if isinstance(value := getattr(record, name), str) and _UNSTORABLE.search(value)
    }
    return replace(record, **dirty) if dirty else record


#: The kinds of query history records (:func:`query_kind`), for "which model for what".
QUERY_KINDS = ("code", "math", "short", "medium", "long")
#: Prompt tokens (characters / 4) below which a plain-text query is short, medium.
_SHORT_TOKENS, _MEDIUM_TOKENS = 64, 512


def query_kind(text: str) -> str:
    """What kind of query ``text`` is: ``code`` or ``math`` by content, else its length.

    Derived from the prompt's metadata features, so history can say which model
    the router prefers for what without keeping the prompt.

    >>> query_kind("def f(x): return x"), query_kind("What is 2 + 2?"), query_kind("Hi there")
    ('code', 'math', 'short')
    >>> query_kind("word " * 200), query_kind("word " * 2000)
    ('medium', 'long')
    """
    flags = dict(zip(METADATA_NAMES, metadata_features(text).tolist(), strict=True))
    if flags["code"]:
        return "code"
    if flags["math"]:
        return "math"
    tokens = len(text) / 4.0
    return "short" if tokens < _SHORT_TOKENS else "medium" if tokens < _MEDIUM_TOKENS else "long"


#: Columns of a history record, in storage order (after ``decision_id``).
HISTORY_FIELDS = (
    "namespace",
    "time",
    "model",
    "algorithm",
    "propensity",
    "confidence",
    "pref_quality",
    "pref_cost",
    "pref_latency",
    "quality",
    "cost",
    "latency",
    "prompt_hash",
    "prompt",
    "explanation",
    "kind",
)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One decision and whatever of its outcome is known (``None`` where not yet)."""

    decision_id: str
    namespace: str
    time: float
    model: str | None = None
    algorithm: str | None = None
    propensity: float | None = None
    confidence: float | None = None
    pref_quality: float | None = None
    pref_cost: float | None = None
    pref_latency: float | None = None
    quality: float | None = None
    cost: float | None = None
    latency: float | None = None
    prompt_hash: str | None = None
    prompt: str | None = None
    explanation: str | None = None
    """:class:`~conduit._types.Explanation` as JSON: why the model was chosen."""
    kind: str | None = None
    """:func:`query_kind` of the prompt."""

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in HISTORY_FIELDS)

    def merged(self, later: HistoryRecord) -> HistoryRecord:
        """This record with the fields ``later`` knows filled in (time stays the decision's)."""
        updates = {
            n: getattr(later, n) for n in HISTORY_FIELDS[2:] if getattr(later, n) is not None
        }
        return replace(self, **updates)

    @classmethod
    def from_row(cls, decision_id: str, row: Sequence[Any]) -> HistoryRecord:
        return cls(decision_id, *row)

    def explain(self) -> Explanation | None:
        """The stored explanation (None if the record has none); StateError if it is malformed."""
        if self.explanation is None:
            return None
        try:
            return Explanation.model_validate_json(self.explanation)
        except PydanticValidationError as exc:
            raise StateError(
                f"history record {self.decision_id!r} has a malformed explanation: {exc}"
            ) from exc


def _merge_history(records: Iterable[HistoryRecord]) -> list[HistoryRecord]:
    """Fold several events of one decision into one record (first event's time wins)."""
    merged: dict[tuple[str, str], HistoryRecord] = {}
    for record in records:
        key = (record.namespace, record.decision_id)
        merged[key] = merged[key].merged(record) if key in merged else record
    return list(merged.values())


#: Default history retention per namespace: 30 days and at most 200,000 decisions (about
#: 100 MB in SQLite with explanations); ``0`` in either means no limit of that kind.
HISTORY_DAYS = 30.0
HISTORY_MAX = 200_000


def check_retention(days: object, keep: object) -> tuple[float | None, int | None]:
    """``(days, keep)`` validated; ``0`` or ``None`` means no limit of that kind."""
    if days is not None:
        days = _validate.number("history_days", days, low=0, what="a number of days >= 0")
    if keep is not None:
        keep = _validate.integer("history_max", keep, low=0)
    return (float(days) if days else None), (keep if keep else None)


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not namespace or len(namespace) > 200:
        raise ConfigurationError(
            f"namespace must be a non-empty str of at most 200 chars, got {namespace!r}"
        )
    if any(ch in namespace for ch in "\x00\n\r"):
        raise ConfigurationError(
            f"namespace must not contain control characters, got {namespace!r}"
        )
    return namespace


@runtime_checkable
class Learner(Protocol):
    """What a store sync needs of a router: its models, what kind of learner it is, its
    additive statistics, and a way to add statistics learned elsewhere."""

    @property
    def models(self) -> tuple[str, ...]: ...

    def meta(self) -> Meta: ...

    def snapshot(self) -> Sums:
        """The statistics learned so far (a copy, taken atomically)."""
        ...

    def merge_delta(self, delta: Sums) -> None:
        """Add statistics learned elsewhere (models the learner does not have are ignored)."""
        ...


class Store(ABC):
    """State and history behind one interface; a backend supplies only the primitives.

    ``namespace`` is the default namespace (from the URL's ``?namespace=``), and
    ``store_prompts`` whether history keeps prompt text (off: only its sha256).
    Every method may raise :class:`~conduit._errors.StoreError` (backend failure,
    with the backend's exception as the cause) or
    :class:`~conduit._errors.StateError` (the stored state is corrupt or foreign).
    """

    scheme: str = ""

    def __init__(
        self,
        *,
        url: str,
        namespace: str = "default",
        store_prompts: bool = False,
        history_days: float | None = HISTORY_DAYS,
        history_max: int | None = HISTORY_MAX,
    ) -> None:
        self.url = url
        self.namespace = check_namespace(namespace)
        self.store_prompts = bool(store_prompts)
        self.history_days, self.history_max = check_retention(history_days, history_max)

    # -- what a backend provides ------------------------------------------------------
    @abstractmethod
    def _read(self, namespace: str) -> str | None:
        """The namespace's blob, or ``None`` if it has none."""

    @abstractmethod
    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        """Atomically replace the blob by ``change(current)``; if it raises, write nothing."""

    @abstractmethod
    def _delete(self, namespace: str) -> bool:
        """Delete the namespace's blob and history; whether there was a blob."""

    @abstractmethod
    def _namespaces(self) -> list[str]:
        """Namespaces that have a state blob."""

    @abstractmethod
    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        """Upsert records by (namespace, decision_id); a ``None`` field keeps the stored value."""

    @abstractmethod
    def _read_history(self, namespace: str, limit: int) -> list[HistoryRecord]:
        """The ``limit`` most recent decisions of the namespace, newest first."""

    @abstractmethod
    def _read_record(self, namespace: str, decision_id: str) -> HistoryRecord | None:
        """One decision's record, or ``None``."""

    @abstractmethod
    def _prune_history(self, namespace: str, before: float | None, keep: int | None) -> int:
        """Delete records older than ``before`` and beyond the ``keep`` newest; how many."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections; the store can not be used afterwards."""

    # -- the protocol -----------------------------------------------------------------
    def pull(self, namespace: str | None = None) -> Snapshot | None:
        """The namespace's global state, or ``None`` if nothing was pushed yet."""
        ns = check_namespace(namespace or self.namespace)
        text = self._read(ns)
        return None if text is None else Snapshot.decode(text, self._where(ns))

    def push(
        self,
        delta: Sums,
        meta: Meta,
        *,
        namespace: str | None = None,
        replica: str | None = None,
        seq: int | None = None,
        forgets: Sequence[Forget] = (),
    ) -> Snapshot:
        """Add ``delta`` to the global state atomically; return the new global state.

        With ``replica`` and ``seq``, a push whose ``seq`` was already applied for that
        replica (a retry after an ambiguous failure) is not added again. ``forgets`` are
        applied after the delta, in the same atomic update and under the same
        at-most-once rule; each raises its (model, stream) epoch.
        """
        ns = check_namespace(namespace or self.namespace)
        where = self._where(ns)
        result: list[Snapshot] = []

        def change(current: str | None) -> str:
            result.clear()
            now = time.time()
            if current is None:
                base = Snapshot(meta, {p: {} for p in PARTS})
            else:
                base = Snapshot.decode(current, where)
                meta.check(base.meta, where)
            # The pusher's own entry is never expired: its absence means the store lost it.
            replicas = {
                r: v for r, v in base.replicas.items() if r == replica or now - v[1] < REPLICA_TTL
            }
            sums, epochs = base.sums, dict(base.epochs)
            previous: int | None = None
            fresh, forgotten = True, []
            if replica is not None and seq is not None:
                previous = replicas[replica][0] if replica in replicas else None
                last = -1 if previous is None else previous
                fresh = seq > last
                replicas[replica] = (max(seq, last), now)
            if fresh:
                sums = add_sums(sums, delta)
                for f in forgets:
                    epoch, log_scale = epochs.get((f.model, f.stream), (0, 0.0))
                    if f.epoch != epoch:
                        continue  # another replica forgot this change already
                    sums, factor = forget_sums(sums, f.model, f.stream, f.keep)
                    forgotten.append((f.model, f.stream))
                    epochs[(f.model, f.stream)] = (epoch + 1, log_scale + float(np.log(factor)))
            new = Snapshot(
                base.meta if current is not None else meta,
                sums,
                base.revision + 1,
                now,
                replicas,
                epochs,
            )
            result.append(replace(new, previous_seq=previous, forgotten=tuple(forgotten)))
            return new.encode()

        self._update(ns, change)
        return result[-1]

    def reset(self, namespace: str | None = None) -> bool:
        """Forget the namespace's learning and history; whether it had any state."""
        return self._delete(check_namespace(namespace or self.namespace))

    def namespaces(self) -> list[str]:
        return sorted(self._namespaces())

    def write_history(self, records: Sequence[HistoryRecord]) -> None:
        """Store decisions and outcomes; events of one decision merge into one record."""
        if records:
            self._write_history(_merge_history(_storable(r) for r in records))

    def history(self, *, namespace: str | None = None, limit: int = 100) -> list[HistoryRecord]:
        """The ``limit`` most recent decisions (with known outcomes), newest first."""
        limit = _validate.integer("limit", limit, low=0)
        return self._read_history(check_namespace(namespace or self.namespace), limit)

    def prune(
        self,
        *,
        namespace: str | None = None,
        days: float | None = None,
        keep: int | None = None,
    ) -> int:
        """Delete history older than ``days`` and beyond the ``keep`` newest decisions (by
        default the store's retention, ``history_days`` and ``history_max``); how many.
        Learned state is never touched."""
        days, keep = check_retention(
            self.history_days if days is None else days,
            self.history_max if keep is None else keep,
        )
        if days is None and keep is None:
            return 0
        before = None if days is None else time.time() - days * 86_400.0
        return self._prune_history(check_namespace(namespace or self.namespace), before, keep)

    def record(self, decision_id: str, *, namespace: str | None = None) -> HistoryRecord | None:
        """The history record of one decision, or ``None`` if the store has none."""
        if not isinstance(decision_id, str) or not decision_id or len(decision_id) > 200:
            raise ConfigurationError(
                f"decision_id must be a non-empty str of at most 200 chars, got {decision_id!r}"
            )
        return self._read_record(check_namespace(namespace or self.namespace), decision_id)

    def _where(self, namespace: str) -> str:
        return f"state {namespace!r} in {self.url}"

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, namespace={self.namespace!r})"


def as_sums(
    bandit: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, float]]
) -> Sums:
    """A router's two groups of statistics as one :data:`Sums`."""
    return {
        "bandit": {
            a: {k: np.array(v, dtype=np.float64) for k, v in s.items()} for a, s in bandit.items()
        },
        "outcomes": {a: {k: np.array(float(v)) for k, v in s.items()} for a, s in outcomes.items()},
    }
