"""The public value types: what a query asks for and what a decision says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from conduit._errors import ConduitError, InvalidFeedbackError, InvalidQueryError

__all__ = [
    "PRESETS",
    "Constraints",
    "Explanation",
    "Feedback",
    "ModelScore",
    "ModelStats",
    "Preferences",
    "Query",
    "RouterStats",
    "RoutingDecision",
    "TargetStats",
]

_Weight = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
_Fraction = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
_Usd = Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)]


def _describe(name: str, exc: PydanticValidationError) -> str:
    """pydantic's complaints as one line each, without its type codes or documentation links."""
    lines = []
    for error in exc.errors(include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        got = "" if error["type"] in ("value_error", "missing") else f", got {error['input']!r}"
        lines.append(f"{name}{'.' + where if where else ''}: {message}{got}")
    return "; ".join(lines)


class _Checked(BaseModel):
    """A value type whose bad input raises :attr:`_error`, a ConduitError that is also a
    ValueError, with a plain message; never pydantic's own ValidationError.

    >>> Constraints(max_cost=-1)
    Traceback (most recent call last):
    conduit._errors.InvalidQueryError: Constraints.max_cost: Input should be greater than 0, got -1
    """

    _error: ClassVar[type[ConduitError]] = InvalidQueryError

    if not TYPE_CHECKING:  # type checkers keep pydantic's typed, per-field __init__

        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except PydanticValidationError as exc:
                raise self._error(_describe(type(self).__name__, exc)) from None


#: The targets a :class:`Preferences` may name (at most one), as its fields are called.
TARGET_KINDS = ("budget", "budget_usd", "quality_floor")


class Preferences(_Checked):
    """How much one query cares about quality, cost and latency.

    The router learns quality, cost and latency separately for every model and
    combines them only when it routes, as
    ``quality * q_hat - cost * cost_share - latency * latency_share``, where
    ``cost_share`` is the model's predicted cost as a fraction of the priciest
    candidate's and ``latency_share`` likewise. One learned state serves every
    preference, so changing it changes the choice at once.

    >>> Preferences.of("cost").cost > Preferences.of("balanced").cost
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    quality: _Weight = 1.0
    cost: _Weight = 0.5
    latency: _Weight = 0.1
    budget: _Fraction | None = None
    """Target mean cost per request as a fraction of always using the dearest candidate."""
    budget_usd: _Usd | None = None
    """Target mean cost per request in USD."""
    quality_floor: _Fraction | None = None
    """Target mean quality as a fraction of the best candidate's learned quality."""

    @model_validator(mode="after")
    def _not_all_zero(self) -> Preferences:
        if self.quality == 0 and self.cost == 0 and self.latency == 0:
            raise ValueError("at least one preference weight must be positive")
        given = [n for n in TARGET_KINDS if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one target, got {' and '.join(given)}")
        if given and self.quality == 0:
            raise ValueError(f"a {given[0]} target needs a positive quality weight")
        return self

    @property
    def target(self) -> str | None:
        """The target as ``name=value`` (how the router keys its controller), or None.

        With a target, the router steers the cost weight online so the running mean
        meets it; ``cost`` is only where that weight starts.

        >>> Preferences(budget=0.2).target, Preferences().target
        ('budget=0.2', None)
        """
        for name in TARGET_KINDS:
            value = getattr(self, name)
            if value is not None:
                return f"{name}={value:g}"
        return None

    @classmethod
    def of(cls, value: Preferences | str | Mapping[str, float] | None) -> Preferences:
        """A preset by name (balanced, quality, cost, speed), weights by name, or the value
        itself; anything else raises InvalidQueryError.

        >>> Preferences.of({"cost": 2.0}).cost, Preferences.of("speed").latency
        (2.0, 1.0)
        """
        if value is None:
            return PRESETS["balanced"]
        if isinstance(value, Preferences):
            return value
        if isinstance(value, Mapping):
            return cls(**{str(k): v for k, v in value.items()})
        if isinstance(value, str) and value in PRESETS:
            return PRESETS[value]
        raise InvalidQueryError(
            f"unknown preference {value!r}; use one of {sorted(PRESETS)}, a mapping of "
            "weights or Preferences(...)"
        )

    @property
    def preset(self) -> str | None:
        """The name of the preset these weights equal, or None for custom weights.

        >>> Preferences(quality=1.0, cost=2.0, latency=0.1).preset, Preferences(cost=0.7).preset
        ('cost', None)
        """
        return next((name for name, p in PRESETS.items() if p == self), None)


#: The named presets. ``balanced`` pays for a stronger model when its expected
#: quality gain exceeds half its extra cost share; ``cost`` only for twice that.
PRESETS: dict[str, Preferences] = {
    "balanced": Preferences(quality=1.0, cost=0.5, latency=0.1),
    "quality": Preferences(quality=1.0, cost=0.05, latency=0.05),
    "cost": Preferences(quality=1.0, cost=2.0, latency=0.1),
    "speed": Preferences(quality=1.0, cost=0.3, latency=1.0),
}


class Constraints(_Checked):
    """Hard limits on one decision; a decision never violates them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cost: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    max_latency: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    allowed_models: frozenset[str] | None = None
    denied_models: frozenset[str] = frozenset()


class Query(_Checked):
    """One request to route.

    ``text`` is what the features are computed from: for a chat, the part that
    carries the question (Conduit embeds the end of a long prompt, since a
    few-shot prefix would make every prompt look alike).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    preferences: Preferences = Field(default_factory=lambda: PRESETS["balanced"])
    constraints: Constraints = Field(default_factory=Constraints)

    @field_validator("text", mode="before")
    @classmethod
    def _text_is_words(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"query text must be a str, not {type(value).__name__}")
        if not value.strip():
            raise ValueError("query text is empty or only whitespace")
        return value

    @field_validator("preferences", mode="before")
    @classmethod
    def _preset(cls, value: object) -> object:
        if value is None or isinstance(value, str):
            return Preferences.of(value)
        return value


class ModelScore(BaseModel):
    """What the router predicted for one candidate model at decision time.

    ``utility = quality weight x (quality + exploration + noise) - penalty``: an index
    policy (UCB1, LinUCB) adds an ``exploration`` bonus to the mean quality; a sampling
    policy (Thompson) ranks a posterior draw, whose difference from the mean is ``noise``.
    (``bonus``, the name of ``exploration`` in records written before, is still read.)
    """

    model_config = ConfigDict(frozen=True)

    utility: float
    quality: float
    exploration: float = Field(0.0, validation_alias=AliasChoices("exploration", "bonus"))
    noise: float = 0.0
    cost: float | None
    latency: float | None


#: The fields of a :class:`RoutingDecision` the router computes only when they are read.
_DEFERRED = ("reason", "confidence", "scores")


class RoutingDecision(BaseModel):
    """The router's choice for one query, and why.

    ``scores`` has one entry per candidate; ``excluded`` names each model the
    query's constraints removed, with the reason. ``exploring`` is true when the
    choice was made for its exploration term or sampled noise: by predicted
    utility without it, ``exploit_model`` would have won.

    The router leaves ``reason``, ``confidence`` and ``scores`` to be computed when one
    of them is first read (``confidence`` is a Monte-Carlo estimate): a request that never
    looks at them does not pay for them. They read, compare and serialise like any field.
    """

    model_config = ConfigDict(frozen=True)

    decision_id: str
    selected_model: str
    confidence: float
    propensity: float
    scores: dict[str, ModelScore]
    reason: str
    algorithm: str
    excluded: dict[str, str] = Field(default_factory=dict)
    exploring: bool = False
    exploit_model: str | None = None
    _why: Callable[[], Mapping[str, Any]] | None = PrivateAttr(default=None)

    @classmethod
    def deferred(cls, why: Callable[[], Mapping[str, Any]], **fields: Any) -> RoutingDecision:
        """A decision from trusted values whose ``reason``, ``confidence`` and ``scores`` come
        from ``why()`` when one is first read (no validation: the router built every value)."""
        decision = cls.model_construct(**fields)
        decision._why = why
        return decision

    def _resolve(self) -> None:
        why = self._why
        if why is not None:
            self.__dict__.update(why())
            self.__pydantic_fields_set__.update(_DEFERRED)
            self._why = None

    def __getattr__(self, name: str) -> Any:
        if name in _DEFERRED and self.__pydantic_private__ and self._why is not None:
            self._resolve()
            return self.__dict__[name]
        return super().__getattr__(name)  # type: ignore[misc]

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> Any:
        self._resolve()
        return handler(self)

    def __eq__(self, other: object) -> bool:
        self._resolve()
        if isinstance(other, RoutingDecision):
            other._resolve()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr_args__(self) -> Any:
        self._resolve()
        return super().__repr_args__()


class Explanation(BaseModel):
    """Why one decision chose its model: the decision, and the preferences it was made under.

    This is what :meth:`conduit.Router.explain` returns and what a store's history
    keeps (as JSON: pydantic's ``model_dump_json``), so ``conduit explain`` can answer for a
    decision made in another process.

    >>> score = ModelScore(utility=0.7, quality=0.6, exploration=0.1, cost=0.002, latency=None)
    >>> decision = RoutingDecision(
    ...     decision_id="d1", selected_model="large", confidence=0.9, propensity=1.0,
    ...     scores={"large": score}, reason="ucb1: best score 0.700", algorithm="ucb1",
    ...     excluded={"small": "in denied_models"})
    >>> explanation = Explanation.of(decision, PRESETS["quality"])
    >>> Explanation.model_validate_json(explanation.model_dump_json()) == explanation
    True
    >>> print(explanation.format())  # doctest: +NORMALIZE_WHITESPACE
    decision d1: large (ucb1, propensity 1.000, confidence 0.90)
    why: ucb1: best score 0.700
    preferences: quality 1, cost 0.05, latency 0.05 (quality)
    utility = quality weight x (quality + exploration) - cost and latency penalty
      model  utility  quality    exploration  penalty       cost  latency
    * large    0.700    0.600          0.100    0.000  $0.002000        -
    excluded by constraints:
      small: in denied_models
    """

    model_config = ConfigDict(frozen=True)

    decision_id: str
    selected_model: str
    algorithm: str
    reason: str
    propensity: float
    confidence: float
    preferences: Preferences
    scores: dict[str, ModelScore]
    excluded: dict[str, str] = Field(default_factory=dict)
    exploring: bool = False
    exploit_model: str | None = None

    @classmethod
    def of(cls, decision: RoutingDecision, preferences: Preferences) -> Explanation:
        fields = {name: getattr(decision, name) for name in RoutingDecision.model_fields}
        return cls(preferences=preferences, **fields)

    @property
    def preset(self) -> str | None:
        """The name of the preset the preferences equal, if any."""
        return self.preferences.preset

    def format(self) -> str:
        """A few lines of text for a terminal: the choice, its reason and every score."""
        p = self.preferences
        preset = f" ({self.preset})" if self.preset else ""
        lines = [
            f"decision {self.decision_id}: {self.selected_model} ({self.algorithm}, "
            f"propensity {self.propensity:.3f}, confidence {self.confidence:.2f})",
            f"why: {self.reason}",
            f"preferences: quality {p.quality:g}, cost {p.cost:g}, latency {p.latency:g}{preset}",
        ]
        width = max(len("model"), *(len(m) for m in self.scores))
        # A sampling policy's term is noise around the mean, not an exploration bonus.
        sampled = any(s.noise for s in self.scores.values())
        term = "sampled noise" if sampled else "exploration"
        lines.append(f"utility = quality weight x (quality + {term}) - cost and latency penalty")
        lines.append(
            f"  {'model':<{width}}  {'utility':>7}  {'quality':>7}  {term:>13}"
            f"  {'penalty':>7}  {'cost':>9}  {'latency':>7}"
        )
        ranked = sorted(self.scores.items(), key=lambda item: -item[1].utility)
        for model, s in ranked:
            mark = "*" if model == self.selected_model else " "
            deviation = s.exploration + s.noise
            penalty = p.quality * (s.quality + deviation) - s.utility
            cost = "-" if s.cost is None else f"${s.cost:.6f}"
            latency = "-" if s.latency is None else f"{s.latency:.2f}s"
            lines.append(
                f"{mark} {model:<{width}}  {s.utility:>7.3f}  {s.quality:>7.3f}  {deviation:>13.3f}"
                f"  {penalty:>7.3f}  {cost:>9}  {latency:>7}"
            )
        if self.exploring and self.exploit_model is not None:
            lines.append(
                f"exploring: by predicted utility without {term}, {self.exploit_model} "
                "would have won"
            )
        if self.excluded:
            lines.append("excluded by constraints:")
            lines.extend(f"  {model}: {why}" for model, why in self.excluded.items())
        return "\n".join(lines)


class Feedback(_Checked):
    """An outcome, or part of one, for a decision. Any subset of the three parts."""

    _error: ClassVar[type[ConduitError]] = InvalidFeedbackError

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str
    quality: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    cost: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    latency: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None


class ModelStats(BaseModel):
    """What the router has seen of one model."""

    model_config = ConfigDict(frozen=True)

    decisions: int
    """Decisions that picked this model."""
    feedback: int
    """Quality feedbacks learned (what the policy's counts hold)."""
    mean_quality: float | None
    mean_cost: float | None
    mean_latency: float | None


class TargetStats(BaseModel):
    """One target's goal against what was realised, from :meth:`conduit.Router.stats`.

    ``goal`` and ``realised`` are mean cost per request (USD) for a budget and mean
    quality for a quality floor; ``cost_share`` is the realised mean cost as a fraction
    of the dearest candidate's; ``cost_weight`` is where the controller holds the cost
    weight now; ``met``: the realised mean at most 10 % over a budget, or at least a
    floor minus 0.01 (None until both are known).
    """

    model_config = ConfigDict(frozen=True)

    target: str
    decisions: int
    goal: float | None
    realised: float | None
    cost_share: float | None
    cost_weight: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def met(self) -> bool | None:
        if self.goal is None or self.realised is None:
            return None
        if self.target.startswith("quality_floor="):
            return self.realised >= self.goal - 0.01
        return self.realised <= 1.10 * self.goal


class RouterStats(BaseModel):
    """Per-model statistics and totals, from :meth:`conduit.Router.stats`."""

    model_config = ConfigDict(frozen=True)

    algorithm: str
    phase: str
    models: dict[str, ModelStats]
    total_decisions: int
    total_feedback: int
    total_cost: float
    pending: int
    """Decisions still waiting for some part of their outcome (quality, cost or latency) and
    not expired; a decision whose three parts all arrived is not pending."""
    targets: dict[str, TargetStats] = Field(default_factory=dict)
    """Each budget or quality floor routed under, with what was realised."""
    counters: dict[str, float] = Field(default_factory=dict)
    """Quality labels learned by source (``quality_explicit``, ``quality_judge``,
    ``quality_shadow``, ``quality_regeneration``, ``quality_automatic``), answers no
    automatic signal graded (``no_signal``), and the judge's calls, cost (USD) and skips:
    see :mod:`conduit._counters`. Summed across replicas through the state store."""
