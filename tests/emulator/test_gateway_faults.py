"""Gateway faults: resumable closes, replays, op 7, op 9, fatal close codes."""

from __future__ import annotations

import disnake
import pytest

from tests.fakes.discord import DiscordEmulator, Message, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, eventually, make_bot


def ids(seen: list[object]) -> list[int]:
    return [m.id for m in seen if isinstance(m, disnake.Message)]


async def say(emu: DiscordEmulator, server: Server, text: str) -> Message:
    return await emu.user_says(server.alice, server.general, text)


@pytest.mark.parametrize("code", [4000, 4008, 1001])
async def test_resume_after_a_resumable_close_replays_missed_messages_exactly_once(
    emu: DiscordEmulator, server: Server, code: int
) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")
    resumed = collect(bot, "on_resumed")
    async with running_client(bot, emu.token):
        before = await say(emu, server, "before")
        await eventually(lambda: len(seen) == 1)
        await emu.close_gateway(code)
        missed = [await say(emu, server, f"while away {n}") for n in range(3)]
        await emu.wait_until(lambda: emu.resume_count == 1)
        after = await say(emu, server, "after")
        await eventually(lambda: after.id in ids(seen))

    assert ids(seen) == [before.id, *(m.id for m in missed), after.id]
    assert len(resumed) == 1 and emu.identify_count == 1
    first, second = emu.gateway_connections
    assert (first.close_code, first.closed_by) == (code, "server")
    assert (second.path, second.start, second.resumed) == ("/gateway/resume", "resume", True)
    assert second.session_id == first.session_id
    replayed = [seq for seq, event in second.events if event == "MESSAGE_CREATE"]
    assert replayed == sorted(set(replayed))


async def test_injected_replay_of_already_delivered_dispatches_reaches_the_client_twice(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        first = await say(emu, server, "delivered once already")
        await eventually(lambda: len(seen) == 1)
        emu.replay_on_next_resume(1)
        await emu.close_gateway(4000)
        await emu.wait_until(lambda: emu.resume_count == 1)
        after = await say(emu, server, "after")
        await eventually(lambda: after.id in ids(seen))
    assert ids(seen) == [first.id, first.id, after.id]


async def test_op7_reconnect_resumes_the_session(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        await emu.send_reconnect()
        await emu.wait_until(lambda: emu.resume_count == 1)
        message = await say(emu, server, "after reconnect")
        await eventually(lambda: seen)
    assert ids(seen) == [message.id] and emu.identify_count == 1
    assert emu.gateway_connections[0].closed_by == "client"


async def test_op9_not_resumable_makes_the_client_identify_again(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        await emu.invalidate_session(resumable=False)
        await emu.wait_until(lambda: emu.identify_count == 2 and emu.hub.connected)
        message = await say(emu, server, "after a new session")
        await eventually(lambda: seen)
    assert ids(seen) == [message.id] and emu.resume_count == 0
    first, second = emu.gateway_connections
    assert first.session_id != second.session_id


async def test_op9_resumable_makes_the_client_resume(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        await emu.invalidate_session(resumable=True)
        await emu.wait_until(lambda: emu.resume_count == 1)
    assert emu.identify_count == 1


async def test_refused_resume_falls_back_to_identify(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        emu.refuse_next_resume()
        await emu.close_gateway(4000)
        await emu.wait_until(lambda: emu.identify_count == 2 and emu.hub.connected)
    starts = [(c.start, c.resumed) for c in emu.gateway_connections]
    assert starts[:3] == [("identify", None), ("resume", False), ("identify", None)]


async def test_fatal_close_4004_stops_the_client(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token) as running:
        await emu.close_gateway(4004)
        with pytest.raises(disnake.ConnectionClosed) as closed:
            await running
    assert closed.value.code == 4004
    assert len(emu.gateway_connections) == 1


async def test_exhausted_session_starts_raise(emu: DiscordEmulator, server: Server) -> None:
    emu.set_session_starts_remaining(0)
    with pytest.raises(disnake.SessionStartLimitReached):
        async with running_client(make_bot(owner_id=1), emu.token):
            pass
