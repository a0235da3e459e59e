"""Standalone Conduit: a PydanticAI model that routes every request with a Conduit router.

>>> import asyncio
>>> from pydantic_ai import Agent
>>> from pydantic_ai.models.test import TestModel
>>> from conduit import Router
>>> router = Router(models=["small", "large"], embedding_backend="hashing", seed=0)
>>> model = ConduitModel({"small": TestModel(), "large": TestModel()}, router=router)
>>> result = asyncio.run(Agent(model).run("What is 2 + 2?"))
>>> router.stats().total_feedback  # the accepted answer was learned as good
1

Needs the ``pydantic-ai`` extra: ``pip install 'conduit[pydantic-ai]'``.
"""

from __future__ import annotations

from conduit._errors import MissingDependencyError

try:
    import pydantic_ai as _pydantic_ai  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError(
        f"conduit.pydantic_ai needs PydanticAI ({_exc}): pip install 'conduit[pydantic-ai]'"
    ) from _exc

from conduit.pydantic_ai._model import ConduitModel, decision_ids, record_feedback

__all__ = ["ConduitModel", "decision_ids", "record_feedback"]
