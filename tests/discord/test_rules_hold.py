"""Permission rules hold wherever Discord sends no roles (catch-up from history, DMs,
slash commands from DMs), and the commands obey them too: /reset, /personas, the
autocomplete of /ask. Unknown roles are looked up; when they cannot be, the rule refuses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.config import AdminSettings
from tests.fakes.discord import EPHEMERAL, DiscordEmulator, Role, User
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import Bot, persona, running_bot, until_recorded
from .test_commands import answer_of

MEMBER_ROUTE = "GET /guilds/{guild_id}/members/{user_id}"


def guarded(banned: Role, *, persona_id: str = "ada") -> object:
    return persona(persona_id, extra=f"triggers: {{keywords: [{persona_id}]}}\n"
                                     f"permissions: {{deny_roles: ['{banned.id}']}}\n")


def members_only(vip: Role, *, persona_id: str = "vera") -> object:
    return persona(persona_id, extra=f"triggers: {{keywords: [{persona_id}]}}\n"
                                     f"permissions: {{allow_roles: ['{vip.id}']}}\n")


async def decisions(bot: Bot, *messages) -> dict[tuple[int, str], tuple[str, str]]:
    """For each message and persona: (event type, reason) of the decision about it."""
    for message in messages:
        await until_recorded(bot, message)
    await bot.dispatcher.wait_idle()
    return {(int(e.data["message_id"]), e.data["persona_id"]): (e.type, e.data["reason"])
            for e in await bot.events("PersonaTriggered", "TriggerRejected")}


def of(found: dict, messages: list, persona_id: str) -> list:
    return [found.get((m.id, persona_id)) for m in messages]


def member(emu: DiscordEmulator, server: Server, name: str, *roles: Role) -> User:
    user = emu.add_user(name)
    emu.add_member(server.guild, user, roles=roles)
    return user


async def test_catch_up_reads_history_without_roles_and_still_applies_the_role_rules(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    banned = emu.add_role(server.guild, "banned")
    vip = emu.add_role(server.guild, "vip")
    mallory = member(emu, server, "mallory", banned)
    vic = member(emu, server, "vic", vip)
    personas = [guarded(banned), members_only(vip)]
    db = tmp_path / "log.db"
    async with running_bot(emu, db, personas, fake_openai) as bot:
        live = [await emu.user_says(server.alice, server.general, "ada, hi"),
                await emu.user_says(server.alice, server.general, "vera, hi")]
        await decisions(bot, *live)
    missed = [await emu.user_says(mallory, server.general, "ada, let me in"),
              await emu.user_says(server.bob, server.general, "ada, hello"),
              await emu.user_says(vic, server.general, "vera, vip here"),
              await emu.user_says(server.bob, server.general, "vera, me too?")]
    history = emu.requests_to("GET /channels/{channel_id}/messages")
    async with running_bot(emu, db, personas, fake_openai) as bot:
        found = await decisions(bot, *missed)

    assert len(emu.requests_to("GET /channels/{channel_id}/messages")) > len(history)
    assert of(found, missed[:2], "ada") == [
        ("TriggerRejected", "permission:role_denied"), ("PersonaTriggered", "keyword")]
    assert of(found, missed[2:], "vera") == [
        ("PersonaTriggered", "keyword"), ("TriggerRejected", "permission:not_allowed")]
    answered = {r.content.rsplit("to: ", 1)[1] for r in bot.ours_in(server.general)}
    assert answered == {"ada, hi", "vera, hi", "ada, hello", "vera, vip here"} - {"vera, hi"}
    assert emu.requests_to(MEMBER_ROUTE)  # the roles were looked up


async def test_a_dm_and_an_ask_from_a_dm_apply_the_server_roles_of_the_author(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    banned = emu.add_role(server.guild, "banned")
    vip = emu.add_role(server.guild, "vip")
    mallory = member(emu, server, "mallory", banned)
    vic = member(emu, server, "vic", vip)
    stranger = emu.add_user("stranger")  # shares no server with the bot
    personas = [guarded(banned), members_only(vip)]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        await emu.wait_for_command("ask")
        said = [await emu.user_says(mallory, emu.dm_channel(mallory), "ada, hi"),
                await emu.user_says(mallory, emu.dm_channel(mallory), "ada, again"),
                await emu.user_says(server.bob, emu.dm_channel(server.bob), "ada, hi"),
                await emu.user_says(stranger, emu.dm_channel(stranger), "ada, hi"),
                await emu.user_says(vic, emu.dm_channel(vic), "vera, hi"),
                await emu.user_says(stranger, emu.dm_channel(stranger), "vera, hi")]
        found = await decisions(bot, *said)
        asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "please"},
                                       emu.dm_channel(mallory), mallory)
        refusal = await answer_of(emu, asked)
        allowed = await emu.user_invokes("ask", {"persona": "ada", "prompt": "please"},
                                         emu.dm_channel(server.bob), server.bob)
        answer = await answer_of(emu, allowed)

    assert of(found, said[:4], "ada") == [
        ("TriggerRejected", "permission:role_denied"),
        ("TriggerRejected", "permission:role_denied"),
        ("PersonaTriggered", "dm"),
        ("PersonaTriggered", "dm")]  # in no shared server: no roles, nothing denied
    assert of(found, said[4:], "vera") == [
        ("PersonaTriggered", "dm"),
        ("TriggerRejected", "permission:not_allowed")]  # and nothing allowed by a role
    assert "can't talk to Ada" in refusal.content and refusal.flags & EPHEMERAL
    assert answer.content.startswith("**Ada**\n") and answer.content.endswith("please")
    assert [m for m in bot.ours_in(emu.dm_channel(mallory)) if m.interaction_id is None] == []
    # mallory's roles were looked up once for two DMs and a command (cached)
    lookups = [r for r in emu.requests_to(MEMBER_ROUTE) if r.path.endswith(f"/{mallory.id}")]
    assert len(lookups) == 1


async def test_roles_that_cannot_be_looked_up_refuse_and_never_allow(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    banned = emu.add_role(server.guild, "banned")
    mallory = member(emu, server, "mallory", banned)
    async with running_bot(emu, tmp_path / "log.db", [guarded(banned)], fake_openai) as bot:
        emu.server_error(MEMBER_ROUTE, times=1, status=403)
        refused = await emu.user_says(mallory, emu.dm_channel(mallory), "ada, hi")
        found = await decisions(bot, refused)
        later = await emu.user_says(server.bob, emu.dm_channel(server.bob), "ada, hi")
        found |= await decisions(bot, later)

    assert of(found, [refused, later], "ada") == [
        ("TriggerRejected", "permission:roles_unknown"), ("PersonaTriggered", "dm")]


async def test_reset_needs_the_permission_and_resets_only_the_callers_turns_unless_admin(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    banned = emu.add_role(server.guild, "banned")
    mallory = member(emu, server, "mallory", banned)
    admin = member(emu, server, "admin")
    admins = AdminSettings(users=frozenset({str(admin.id)}))
    async with running_bot(emu, tmp_path / "log.db", [guarded(banned)], fake_openai,
                           admins=admins) as bot:
        await emu.wait_for_command("reset")
        for who, text in ((server.alice, "ada, alice says 1"), (server.bob, "ada, bob says 2")):
            await bot.reply_to(await emu.user_says(who, server.general, text))
        denied = await answer_of(emu, await emu.user_invokes(
            "reset", {}, server.general, mallory))
        named = await answer_of(emu, await emu.user_invokes(
            "reset", {"persona": "ada"}, server.general, mallory))
        resets_before = len(await bot.events("ConversationReset"))
        own = await answer_of(emu, await emu.user_invokes(
            "reset", {}, server.general, server.alice))
        await bot.reply_to(await emu.user_says(server.bob, server.general, "ada, bob again"))
        everyone = await answer_of(emu, await emu.user_invokes(
            "reset", {}, server.general, admin))
        await bot.reply_to(await emu.user_says(server.bob, server.general, "ada, fresh"))
        resets = [e.data for e in await bot.events("ConversationReset")]

    assert resets_before == 0
    assert "can't talk to any persona" in denied.content and denied.flags & EPHEMERAL
    assert "can't talk to Ada" in named.content
    assert own.flags & EPHEMERAL and "for yourself" in own.content
    assert not everyone.flags & EPHEMERAL and "reset the conversation" in everyone.content
    assert [(r["by_user"], r["scope"]) for r in resets] == [
        (str(server.alice.id), "user"), (str(admin.id), "channel")]
    after_own, after_everyone = (
        [m["content"] for m in request.messages[1:]] for request in fake_openai.requests[2:])
    # alice's turn and the reply to it left bob's context; bob's own stayed
    assert [m for m in after_own if "alice" in m] == []
    assert "ada, bob says 2" in after_own and after_own[-1] == "ada, bob again"
    assert after_everyone == ["ada, fresh"]


async def test_personas_and_the_ask_autocomplete_offer_only_who_the_caller_may_talk_to(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    banned = emu.add_role(server.guild, "banned")
    mallory = member(emu, server, "mallory", banned)
    personas = [persona("ada", provider="offline",
                        extra=f"permissions: {{deny_roles: ['{banned.id}']}}\n"),
                persona("max", provider="offline")]
    async with running_bot(emu, tmp_path / "log.db", personas):
        await emu.wait_for_command("personas")
        listed = {}
        for who, where in ((mallory, server.general), (mallory, emu.dm_channel(mallory)),
                           (server.alice, server.general)):
            answer = await answer_of(emu, await emu.user_invokes("personas", {}, where, who))
            listed[(who.username, where.id)] = answer.content
        typing = await emu.user_autocompletes("ask", {"persona": "", "prompt": ""}, "persona",
                                              server.general, mallory)
        choices = await emu.wait_until(lambda: emu.interaction(typing.id).choices)
        await asyncio.sleep(0)

    assert listed[("mallory", server.general.id)] == "**Max** (`max`)"
    assert listed[("mallory", emu.dm_channel(mallory).id)] == "**Max** (`max`)"
    assert listed[("alice", server.general.id)] == "**Ada** (`ada`)\n**Max** (`max`)"
    assert [c["value"] for c in choices] == ["max"]
