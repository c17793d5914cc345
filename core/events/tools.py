"""Tool steps of a reply: each tool call the model asked for, and what it got back.

A reply that uses tools is a loop: the model asks for calls (:class:`ToolCalled`, one
event per call, numbered by ``step``, the model call that asked, and ``index`` within
it), each runs and its result is recorded (:class:`ToolResult`), and the model is
asked again with the results, until it answers in text. The events are in the
conversation's stream, before the reply's ModelReplied; with the context positions
of the reply they rebuild every prompt of the loop exactly (``personae explain``), and
``personae rerun`` replays the recorded results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import ERASED_TEXT, DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled(DomainEvent):
    """The model asked to call ``tool`` with ``arguments`` (its JSON text as written).

    The first call of a step (``index`` 0) also holds what that model call said besides
    (``text``, ``reasoning``) and cost (``usage``, ``latency_s``) and how many calls it
    made (``calls``).
    """

    type: ClassVar[str] = "ToolCalled"
    personal: ClassVar[Mapping[str, Any]] = {"arguments": "{}", "text": "", "reasoning": ""}
    platform: str
    message_id: str
    persona_id: str
    step: int
    index: int
    call_id: str
    tool: str
    arguments: str
    calls: int = 1
    text: str = ""
    reasoning: str = ""
    provider: str = ""
    model: str = ""
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0
    author_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult(DomainEvent):
    """What the call ``call_id`` returned to the model: ``content`` (an error's
    sentence when ``ok`` is false, ``error`` then naming its class), and how long it took."""

    type: ClassVar[str] = "ToolResult"
    personal: ClassVar[Mapping[str, Any]] = {"content": ERASED_TEXT}
    platform: str
    message_id: str
    persona_id: str
    step: int
    index: int
    call_id: str
    tool: str
    ok: bool
    content: str
    duration_s: float = 0.0
    error: str | None = None
    author_id: str = ""
