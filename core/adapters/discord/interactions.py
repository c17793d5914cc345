"""Answers that go back to a slash command instead of into the channel.

Discord gives an interaction 3 seconds for its first answer. A command registered
here is answered directly (type 4) when its reply is ready within ``defer_after_s``;
otherwise it is deferred (type 5, "thinking...") at that moment and the reply
edits the original response later, with follow-ups for the parts after the first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

import disnake
from disnake.interactions import ApplicationCommandInteraction

log = logging.getLogger(__name__)

DEFER_AFTER_S = 2.0
FINISHED_KEPT = 1000
"""Answered commands remembered, so a late notice about one is not posted in the channel."""


@dataclass(slots=True)
class _Pending:
    interaction: ApplicationCommandInteraction
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deferred: bool = False
    answered: bool = False
    timer: asyncio.Task[None] | None = None


class InteractionReplies:
    """Pending slash commands by the id of the neutral message they became."""

    def __init__(self, defer_after_s: float = DEFER_AFTER_S) -> None:
        self._defer_after_s = defer_after_s
        self._pending: dict[str, _Pending] = {}
        self._finished: deque[str] = deque(maxlen=FINISHED_KEPT)

    def expect(self, message_id: str, interaction: ApplicationCommandInteraction) -> None:
        """The reply to ``message_id`` answers ``interaction``; defer it if it is slow."""
        pending = _Pending(interaction)
        pending.timer = asyncio.create_task(self._defer_later(pending))
        self._pending[message_id] = pending

    def expects(self, message_id: str) -> bool:
        """True while ``message_id`` is a slash command waiting for its answer."""
        return message_id in self._pending

    async def answer(self, message_id: str, parts: list[str],
                     allowed: disnake.AllowedMentions) -> list[str]:
        """Post ``parts`` as the command's answer; returns the ids of the messages."""
        pending = self._pending.pop(message_id)
        self._finished.append(message_id)
        inter = pending.interaction
        async with pending.lock:
            _stop(pending)
            ids = []
            first: disnake.Message
            if pending.answered:
                first = await inter.followup.send(parts[0], allowed_mentions=allowed, wait=True)
            elif pending.deferred:
                first = await inter.edit_original_response(content=parts[0],
                                                           allowed_mentions=allowed)
            else:
                await inter.response.send_message(parts[0], allowed_mentions=allowed)
                first = await inter.original_response()
            pending.answered = True
            ids.append(str(first.id))
            for part in parts[1:]:
                message = await inter.followup.send(part, allowed_mentions=allowed, wait=True)
                ids.append(str(message.id))
            return ids

    async def tell(self, message_id: str, text: str) -> bool:
        """A one-line notice only the user sees (rate limited, refused, failed).
        False when ``message_id`` is not a slash command; a command already answered
        gets nothing more."""
        pending = self._pending.pop(message_id, None)
        if pending is None:
            return message_id in self._finished
        self._finished.append(message_id)
        inter = pending.interaction
        async with pending.lock:
            _stop(pending)
            if pending.deferred:
                # a deferred answer cannot turn ephemeral: say it there, then a private line
                await inter.edit_original_response(content=text)
            elif pending.answered:
                await inter.followup.send(text, ephemeral=True)
            else:
                await inter.response.send_message(text, ephemeral=True)
            pending.answered = True
        return True

    async def aclose(self) -> None:
        """Stop the deferral timers."""
        for pending in self._pending.values():
            _stop(pending)
        self._pending.clear()

    async def _defer_later(self, pending: _Pending) -> None:
        await asyncio.sleep(self._defer_after_s)
        async with pending.lock:
            if pending.answered or pending.deferred:
                return
            try:
                await pending.interaction.response.defer()
                pending.deferred = True
            except disnake.HTTPException:
                log.warning("could not defer a slash command", exc_info=True)


def _stop(pending: _Pending) -> None:
    if pending.timer is not None:
        pending.timer.cancel()
        pending.timer = None
