"""The public value types: what a query asks for and what a decision says."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "PRESETS",
    "Constraints",
    "Feedback",
    "ModelScore",
    "ModelStats",
    "Preferences",
    "Query",
    "RouterStats",
    "RoutingDecision",
]

_Weight = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]

PresetName = Literal["balanced", "quality", "cost", "speed"]


class Preferences(BaseModel):
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

    @model_validator(mode="after")
    def _not_all_zero(self) -> Preferences:
        if self.quality == 0 and self.cost == 0 and self.latency == 0:
            raise ValueError("at least one preference weight must be positive")
        return self

    @classmethod
    def of(cls, value: Preferences | str | None) -> Preferences:
        """A preset by name (balanced, quality, cost, speed), or the value itself."""
        if value is None:
            return PRESETS["balanced"]
        if isinstance(value, Preferences):
            return value
        if isinstance(value, str) and value in PRESETS:
            return PRESETS[value]
        raise ValueError(
            f"unknown preference {value!r}; use one of {sorted(PRESETS)} or Preferences(...)"
        )


#: The named presets. ``balanced`` pays for a stronger model when its expected
#: quality gain exceeds half its extra cost share; ``cost`` only for twice that.
PRESETS: dict[str, Preferences] = {
    "balanced": Preferences(quality=1.0, cost=0.5, latency=0.1),
    "quality": Preferences(quality=1.0, cost=0.05, latency=0.05),
    "cost": Preferences(quality=1.0, cost=2.0, latency=0.1),
    "speed": Preferences(quality=1.0, cost=0.3, latency=1.0),
}


class Constraints(BaseModel):
    """Hard limits on one decision; a decision never violates them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cost: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    max_latency: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    allowed_models: frozenset[str] | None = None
    denied_models: frozenset[str] = frozenset()


class Query(BaseModel):
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
    """What the router predicted for one candidate model at decision time."""

    model_config = ConfigDict(frozen=True)

    utility: float
    quality: float
    bonus: float
    cost: float | None
    latency: float | None


class RoutingDecision(BaseModel):
    """The router's choice for one query, and why."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    selected_model: str
    confidence: float
    propensity: float
    scores: dict[str, ModelScore]
    reason: str
    algorithm: str


class Feedback(BaseModel):
    """An outcome, or part of one, for a decision. Any subset of the three parts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str
    quality: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    cost: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    latency: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None



class ModelStats(BaseModel):
    """What the router has seen of one model."""

    model_config = ConfigDict(frozen=True)

    pulls: int
    """Decisions that picked this model."""
    feedback: int
    """Quality feedbacks learned."""
    mean_quality: float | None
    mean_cost: float | None
    mean_latency: float | None


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
