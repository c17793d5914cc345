"""Events about the running system rather than a conversation: quota windows, persona
versions, the gateway connection, the log's own creation, reruns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import ERASED_TEXT, DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaReset(DomainEvent):
    """A persona's quota window starts again. ``scheduled_for`` is the cron fire time
    (Unix seconds); ``catch_up`` is true when it fell due while the bot was down."""

    type: ClassVar[str] = "QuotaReset"
    persona_id: str
    scheduled_for: float
    cron: str
    timezone: str = "UTC"
    catch_up: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonaVersionRecorded(DomainEvent):
    """One distinct version of a persona: its file's text, the defaults applied and the
    lorebook files it includes, recorded once, so the persona behind any reply can be
    rebuilt exactly."""

    type: ClassVar[str] = "PersonaVersionRecorded"
    persona_id: str
    version: str
    source_text: str
    path: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    included: Mapping[str, str] = field(default_factory=dict)
    """The text of each lorebook file the persona includes, by name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayChange(DomainEvent):
    """What the three gateway events share: which session, of which shard, when."""

    platform: str
    session_id: str | None
    at: float
    shard_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConnected(GatewayChange):
    """A new gateway session (after IDENTIFY)."""

    type: ClassVar[str] = "GatewayConnected"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayResumed(GatewayChange):
    """A gateway session resumed after a dropped connection."""

    type: ClassVar[str] = "GatewayResumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayDisconnected(GatewayChange):
    """The gateway connection was lost or closed."""

    type: ClassVar[str] = "GatewayDisconnected"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogCreated(DomainEvent):
    """``personae db init`` made this log."""

    type: ClassVar[str] = "LogCreated"
    schema: str = "personae"


@dataclass(frozen=True, slots=True, kw_only=True)
class RerunRecorded(DomainEvent):
    """``personae rerun`` asked the model again what a recorded call asked: never part
    of a conversation, never delivered, counted in no quota. ``prompt`` is the last
    prompt sent; ``tool_steps`` the tool calls it made and their results (``live``:
    called, else replayed from the log)."""

    type: ClassVar[str] = "RerunRecorded"
    personal: ClassVar[Mapping[str, Any]] = {"text": ERASED_TEXT, "prompt": (),
                                             "tool_steps": ()}
    platform: str
    message_id: str
    source_event_id: str
    persona_id: str
    persona_version: str
    recorded_version: str
    provider: str
    model: str
    ok: bool
    text: str
    prompt: tuple[Mapping[str, Any], ...]
    persona_path: str | None = None
    error_class: str | None = None
    error: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0
    attempts: int = 0
    tool_steps: tuple[Mapping[str, Any], ...] = ()
    author_id: str = ""
