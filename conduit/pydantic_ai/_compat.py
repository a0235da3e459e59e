"""Everything ConduitModel takes from PydanticAI's private modules, in one place.

``FallbackModel`` is public; the helpers it uses to try one candidate model
(request deadlines, the framing announcement, waiting for a stream's first
event) are not. They are imported here only, so a PydanticAI release that moves
them breaks one module, and the tests of this package say so at once.
"""

from __future__ import annotations

from pydantic_ai._fallback import request_stream_until_first_event
from pydantic_ai._unsupported_settings import suppress_warnings as suppress_setting_warnings
from pydantic_ai.models import _with_framing_announcement as with_framing_announcement
from pydantic_ai.models._request_timeout import enforce_request_deadline, start_request_deadline

__all__ = [
    "enforce_request_deadline",
    "request_stream_until_first_event",
    "start_request_deadline",
    "suppress_setting_warnings",
    "with_framing_announcement",
]
