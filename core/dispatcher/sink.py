"""What an adapter implements to receive replies: the dispatcher's only way out.

The Discord adapter posts through webhooks or plain replies; the console prints.
``deliver`` returns the platform ids of what it posted (recorded as
ReplyDelivered) and raises :class:`DeliveryError` when it could not post
(recorded as ReplyFailed). ``typing`` and ``stream_delta`` are hints an adapter
may ignore.
"""

from __future__ import annotations

from typing import Protocol

from .messages import DeliveryReceipt, Notice, OutboundReply, ReplyTarget


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

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """The persona started working on a reply to ``target``."""
        ...

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """A piece of the reply as it arrives (before :meth:`deliver`)."""
        ...
