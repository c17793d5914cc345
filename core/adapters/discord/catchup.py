"""After a restart: answer, once, what people said while the bot was away.

Channels where a persona was active within the window (a trigger or a delivery
recorded then) have their recent history fetched; every message in the window goes
through the dispatcher like a live one. Messages the log already has are no-ops
there (ingestion is idempotent on the message id), so only the missed ones are
answered, and only once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import disnake

from eventstore import EventStore, LogReader

from ...events import PersonaTriggered, ReplyDelivered
from ...events.ids import conversation_prefix
from .inbound import PLATFORM

log = logging.getLogger(__name__)

HISTORY_LIMIT = 200
"""At most this many messages are fetched per channel."""


def recent_channels(log_: LogReader, since: float) -> list[str]:
    """Channel ids (threads and DMs included) with persona activity since ``since``."""
    prefix = conversation_prefix(PLATFORM)
    streams = log_.active_streams(since, types=(PersonaTriggered.type, ReplyDelivered.type),
                                  prefix=prefix)
    return [stream[len(prefix):] for stream in streams]


async def catch_up(client: disnake.Client, store: EventStore, window_s: float,
                   ingest: Callable[[disnake.Message], Awaitable[None]], *,
                   clock: Callable[[], float] = time.time,
                   channels: Iterable[str] | None = None,
                   owns: Callable[[int | None], bool] | None = None) -> int:
    """Feed ``ingest`` every message of the window in recently active channels (or in
    ``channels``); returns how many messages were looked at. With ``owns`` (a guild id,
    None for DMs: whether this process runs its shard), channels of other processes'
    shards are left to them."""
    since = clock() - window_s
    if channels is None:
        channels = await store.read(lambda log_: recent_channels(log_, since))
    channels = list(channels)
    after = disnake.Object(disnake.utils.time_snowflake(datetime.fromtimestamp(since, UTC)))
    seen = looked = 0
    for channel_id in channels:
        try:
            channel = client.get_channel(int(channel_id)) or await client.fetch_channel(
                int(channel_id))
            if owns is not None and not owns(_guild_id(channel)):
                continue
            looked += 1
            history = channel.history(limit=HISTORY_LIMIT, after=after,  # type: ignore[union-attr]
                                      oldest_first=True)
            async for message in history:
                seen += 1
                await ingest(message)
        except (disnake.HTTPException, AttributeError) as exc:
            log.warning("could not catch up channel %s: %s", channel_id, exc)
    if looked:
        log.info("caught up %d channel(s), %d message(s) looked at", looked, seen)
    return seen


def _guild_id(channel: object) -> int | None:
    guild = getattr(channel, "guild", None)
    return getattr(guild, "id", None)
