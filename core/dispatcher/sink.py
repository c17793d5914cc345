"""What an adapter implements to receive replies: the dispatcher's only way out.

The Discord adapter posts through webhooks or plain replies; the console prints.
``deliver`` returns the platform ids of what it posted (recorded as
ReplyDelivered) and raises :class:`DeliveryError` when it could not post
(recorded as ReplyFailed). ``typing`` and ``stream_delta`` are hints an adapter
may ignore.

An adapter that posts a reply in several steps (several messages; a preview edited as
the reply streams in) records each step through the dispatcher's
:class:`DeliveryRecorder` as it happens, and after a crash reads back what was done
(:class:`DeliveryState`), so that it finishes the reply instead of starting it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .messages import DeliveryReceipt, ModerationAlert, Notice, OutboundReply, ReplyTarget


class DeliveryError(Exception):
    """The adapter could not deliver; the message is a safe sentence for the log."""


class ReplySink(Protocol):
    """An adapter's side of the dispatcher (one per platform)."""

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        """Post ``reply``; return the ids of the messages it became."""
        ...

    async def notice(self, notice: Notice) -> None:
        """Show a short notice (busy, rate limited, quota, failure)."""
        ...

    async def alert(self, alert: ModerationAlert) -> None:
        """Post a moderation alert in the moderators' channel, with a link to the message."""
        ...

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """The persona started working on a reply to ``target``."""
        ...

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """A piece of the reply as it arrives (before :meth:`deliver`)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """A streamed reply's preview message: where it is and how it was posted. Without
    ``posted_id`` it was about to be posted (with ``text``) when the log last heard."""

    text: str
    route: str
    channel_id: str
    posted_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryState:
    """What the log holds of one reply's delivery: its plan (the parts' texts, the route,
    the channel; empty when none was recorded), the parts posted, and its preview."""

    parts: tuple[str, ...] = ()
    route: str = ""
    channel_id: str = ""
    posted: Mapping[int, str] = field(default_factory=dict)
    preview: Preview | None = None


class DeliveryRecorder(Protocol):
    """Records the steps of a delivery in the log as they happen (the dispatcher's)."""

    async def state(self, target: ReplyTarget, persona_id: str) -> DeliveryState:
        """What was recorded of ``persona_id``'s reply to ``target`` so far."""
        ...

    async def planned(self, target: ReplyTarget, persona_id: str, *, parts: Sequence[str],
                      route: str, channel_id: str) -> None:
        """The reply is about to be posted as ``parts``."""
        ...

    async def posted(self, target: ReplyTarget, persona_id: str, index: int,
                     posted_id: str) -> None:
        """Part ``index`` is on the platform as ``posted_id``."""
        ...

    async def preview_planned(self, target: ReplyTarget, persona_id: str, *, text: str,
                              route: str, channel_id: str) -> None:
        """A preview with ``text`` is about to be posted."""
        ...

    async def previewed(self, target: ReplyTarget, persona_id: str, posted_id: str) -> None:
        """The preview is on the platform as ``posted_id`` (before its first edit)."""
        ...

    async def claims(self, platform: str, message_ids: Sequence[str]
                     ) -> Mapping[str, tuple[str, str]]:
        """Which of ``message_ids`` a recorded delivery claims already: each one's
        (answered message id, persona id)."""
        ...
