"""A greeting and the reply to the message that opened its conversation are two
deliveries: their recorded steps, claims and nonces never mix."""

from __future__ import annotations

from pathlib import Path

from core.adapters.discord.delivery import part_nonce
from core.context.history import ConversationHistory
from core.dispatcher.deliveries import DeliveryLog
from core.dispatcher.messages import ReplyTarget

from .conftest import open_store

REPLY = ReplyTarget(platform="discord", channel_id="c1", message_id="100", author_id="u1")
GREETING = ReplyTarget(platform="discord", channel_id="c1", message_id="100", author_id="u1",
                       greeting=True)


async def test_a_greetings_recorded_steps_are_not_the_replys(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db")
    try:
        deliveries = DeliveryLog(store, ConversationHistory(store))
        await deliveries.planned(GREETING, "ada", parts=["hello", "there"], route="bot",
                                 channel_id="c1")
        await deliveries.posted(GREETING, "ada", 0, "201")

        reply = await deliveries.state(REPLY, "ada")
        greeting = await deliveries.state(GREETING, "ada")
        claims = await deliveries.claims("discord", ["201"])
    finally:
        await store.close()

    assert reply.parts == () and reply.posted == {}
    assert greeting.parts == ("hello", "there") and greeting.posted == {0: "201"}
    assert claims["201"] != (REPLY.message_id, "ada")  # the reply can never take it


def test_a_greeting_and_the_reply_post_with_different_nonces() -> None:
    assert part_nonce(GREETING, "ada", 0) != part_nonce(REPLY, "ada", 0)
