"""One reused webhook per channel, through which every persona speaks as itself.

Discord allows ten webhooks per channel, so personae never makes one per persona:
it finds (or creates once) a webhook of its own in the channel and sets the
persona's name and avatar on each message. Threads post through their parent
channel's webhook. Where the bot lacks Manage Webhooks there is no webhook, and the
caller falls back to normal bot messages.
"""

from __future__ import annotations

import asyncio
import logging

import disnake
from disnake.webhook import Webhook

log = logging.getLogger(__name__)

WEBHOOK_NAME = "personae"


class WebhookCache:
    """The bot's webhook in each channel, looked up or created once per process."""

    def __init__(self, client: disnake.Client) -> None:
        self._client = client
        self._hooks: dict[int, Webhook] = {}
        self._ids: set[int] = set()  # of the hooks above: every inbound message asks
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, channel: disnake.TextChannel) -> Webhook | None:
        """The webhook to post through in ``channel``; None without Manage Webhooks."""
        me = channel.guild.me
        if me is None or not channel.permissions_for(me).manage_webhooks:
            return None
        hook = self._hooks.get(channel.id)
        if hook is not None:
            return hook
        lock = self._locks.setdefault(channel.id, asyncio.Lock())
        async with lock:
            hook = self._hooks.get(channel.id)
            if hook is None:
                hook = await self._find_or_create(channel)
                if hook is not None:
                    self._hooks[channel.id] = hook
                    self._ids.add(hook.id)
            return hook

    def owns(self, webhook_id: int) -> bool:
        """True for a webhook this process posts through."""
        return webhook_id in self._ids

    def forget(self, channel_id: int) -> None:
        """Drop a webhook that stopped working (deleted by someone), so the next
        message looks again."""
        hook = self._hooks.pop(channel_id, None)
        if hook is not None:
            self._ids.discard(hook.id)

    async def _find_or_create(self, channel: disnake.TextChannel) -> Webhook | None:
        user = self._client.user
        try:
            for hook in await channel.webhooks():
                if hook.token and hook.user is not None and hook.user.id == user.id:
                    return hook
            return await channel.create_webhook(name=WEBHOOK_NAME,
                                                reason="personae posts as its personas")
        except disnake.Forbidden:
            log.warning("no Manage Webhooks permission in #%s: personas post as the bot",
                        channel.name)
            return None
