"""Slash commands: registration, type 4 answers, deferral with follow-ups, autocomplete."""

from __future__ import annotations

import asyncio

import aiohttp
import disnake
import pytest
from disnake.ext import commands

from tests.fakes.discord import (
    EPHEMERAL,
    LOADING,
    DiscordEmulator,
    disnake_pointed_at,
    running_client,
)
from tests.fakes.discord.fixtures import Server

from .conftest import make_bot


def bot_with_commands(outcomes: list[BaseException]) -> commands.InteractionBot:
    bot = make_bot()

    @bot.slash_command(name="echo", description="Say it back")
    async def echo(inter: disnake.ApplicationCommandInteraction, text: str) -> None:
        await inter.response.send_message(f"echo: {text}")

    @bot.slash_command(name="usage", description="Private usage")
    async def usage(inter: disnake.ApplicationCommandInteraction) -> None:
        await inter.response.send_message("3 left", ephemeral=True)

    @bot.slash_command(name="slow", description="Deferred answer")
    async def slow(inter: disnake.ApplicationCommandInteraction) -> None:
        await inter.response.defer()
        await asyncio.sleep(0.05)
        await inter.edit_original_response(content="thinking done")
        await inter.followup.send("and a follow-up")

    @bot.slash_command(name="late", description="Answers too late")
    async def late(inter: disnake.ApplicationCommandInteraction) -> None:
        await asyncio.sleep(0.3)
        try:
            await inter.response.send_message("too late")
        except disnake.InteractionTimedOut as error:
            outcomes.append(error)

    @bot.slash_command(name="ask", description="Ask a persona")
    async def ask(inter: disnake.ApplicationCommandInteraction, persona: str) -> None:
        await inter.response.send_message(persona)

    @ask.autocomplete("persona")
    async def persona_names(inter: disnake.ApplicationCommandInteraction, typed: str) -> list[str]:
        return [name for name in ("ada", "bob", "adele") if name.startswith(typed)]

    return bot


async def test_slash_commands_answered_directly_ephemerally_and_deferred(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = bot_with_commands([])
    async with running_client(bot, emu.token):
        await emu.wait_for_command("echo")
        echo = await emu.user_invokes("echo", {"text": "hi"}, server.general, server.alice)
        answered = await emu.wait_until(lambda: emu.interaction(echo.id).original_message_id)
        usage = await emu.user_invokes("usage", {}, server.general, server.alice)
        private = await emu.wait_until(lambda: emu.interaction(usage.id).original_message_id)
        slow = await emu.user_invokes("slow", {}, server.general, server.bob)
        await emu.wait_until(lambda: emu.interaction(slow.id).followup_message_ids)

    assert emu.interaction(echo.id).callbacks[0].type == 4
    assert emu.message(answered).content == "echo: hi"
    assert emu.message(answered).interaction_id == echo.id
    assert emu.message(private).flags & EPHEMERAL
    deferred = emu.interaction(slow.id)
    assert [c.type for c in deferred.callbacks] == [5]
    assert deferred.original_message_id is not None
    original = emu.message(deferred.original_message_id)
    assert original.content == "thinking done" and not original.flags & LOADING
    [followup] = deferred.followup_message_ids
    assert emu.message(followup).content == "and a follow-up"
    registered = emu.requests_to("PUT /applications/{app_id}/commands")
    assert registered and {c["name"] for c in registered[-1].json} >= {"echo", "slow", "ask"}


async def test_an_interaction_answered_after_the_deadline_times_out() -> None:
    outcomes: list[BaseException] = []
    async with DiscordEmulator(interaction_deadline=0.2) as emulator:
        guild = emulator.add_guild("g")
        channel = emulator.add_text_channel(guild, "c")
        user = emulator.add_user("u")
        emulator.add_member(guild, user)
        with disnake_pointed_at(emulator.api_base_url):
            bot = bot_with_commands(outcomes)
            async with running_client(bot, emulator.token):
                await emulator.wait_for_command("late")
                late = await emulator.user_invokes("late", {}, channel, user)
                await emulator.wait_until(
                    lambda: emulator.requests_to("POST /interactions/{interaction_id}/{token}/callback")
                )
                await asyncio.sleep(0.05)
        assert not emulator.interaction(late.id).acknowledged
        assert [type(o) for o in outcomes] == [disnake.InteractionTimedOut]


async def test_autocomplete_choices_are_recorded(emu: DiscordEmulator, server: Server) -> None:
    bot = bot_with_commands([])
    async with running_client(bot, emu.token):
        await emu.wait_for_command("ask")
        typing = await emu.user_autocompletes(
            "ask", {"persona": "ad"}, "persona", server.general, server.alice
        )
        choices = await emu.wait_until(lambda: emu.interaction(typing.id).choices)
    assert [c["name"] for c in choices] == ["ada", "adele"]


async def test_unknown_command_is_a_clear_error(emu: DiscordEmulator, server: Server) -> None:
    with pytest.raises(LookupError, match="no command 'nope'"):
        await emu.user_invokes("nope", {}, server.general, server.alice)


async def test_a_second_callback_is_refused_as_already_acknowledged(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = bot_with_commands([])
    async with running_client(bot, emu.token):
        await emu.wait_for_command("echo")
        echo = await emu.user_invokes("echo", {"text": "x"}, server.general, server.alice)
        await emu.wait_until(lambda: emu.interaction(echo.id).acknowledged)
    url = f"{emu.api_base_url}/interactions/{echo.id}/{echo.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as response,
    ):
        assert response.status == 400
        assert response.headers["Content-Type"] == "application/json"
        assert (await response.json())["code"] == 40060
    assert len(emu.interaction(echo.id).callbacks) == 1
