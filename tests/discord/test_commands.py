"""Slash commands: /ask (direct and deferred), /personas, /reset, /usage, /reload, /forget."""

from __future__ import annotations

from pathlib import Path

from core.adapters.discord import DiscordAdapterSettings
from core.config import AdminSettings
from core.personas.registry import PersonaRegistry
from core.personas.watcher import PersonaWatcher
from tests.fakes.discord import EPHEMERAL, DiscordEmulator, Interaction, Message
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import PROVIDERS, persona, running_bot


async def answer_of(emu: DiscordEmulator, interaction: Interaction) -> Message:
    """The command's visible answer, once it is there (after the edit, when deferred)."""

    def answered() -> Message | None:
        current = emu.interaction(interaction.id)
        if current.original_message_id is None:
            return None
        message = emu.message(current.original_message_id)
        return message if message.content else None

    return await emu.wait_until(answered)


async def test_ask_with_autocomplete_is_answered_directly_when_quick(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    personas = [persona("ada"), persona("max"), persona("adele")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        await emu.wait_for_command("ask")
        typing = await emu.user_autocompletes("ask", {"persona": "ad", "prompt": ""}, "persona",
                                              server.general, server.alice)
        choices = await emu.wait_until(lambda: emu.interaction(typing.id).choices)
        asked = await emu.user_invokes("ask", {"persona": "max", "prompt": "what is 2+2?"},
                                       server.general, server.alice)
        answer = await answer_of(emu, asked)
        await bot.dispatcher.wait_idle()
        triggered = await bot.events("PersonaTriggered")
        unknown = await emu.user_invokes("ask", {"persona": "zed", "prompt": "hi"},
                                         server.general, server.alice)
        refusal = await answer_of(emu, unknown)

    assert sorted(c["value"] for c in choices) == ["ada", "adele"]
    assert [c.type for c in emu.interaction(asked.id).callbacks] == [4]
    assert answer.content.startswith("**Max**\n") and answer.content.endswith("to: what is 2+2?")
    assert [(e.data["persona_id"], e.data["reason"]) for e in triggered] == [("max", "invoked")]
    assert refusal.flags & EPHEMERAL and "no persona called 'zed'" in refusal.content


async def test_ask_is_deferred_when_the_model_is_slow(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    settings = DiscordAdapterSettings(defer_after_s=0.2)
    async with FakeOpenAI(latency_s=0.6) as slow, running_bot(
            emu, tmp_path / "log.db", [persona("ada")], slow, settings=settings):
        await emu.wait_for_command("ask")
        asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "take your time"},
                                       server.general, server.bob)
        answer = await answer_of(emu, asked)

    callbacks = emu.interaction(asked.id).callbacks
    assert [c.type for c in callbacks] == [5]
    assert callbacks[0].at - asked.created_at < 1.0
    assert answer.content.startswith("**Ada**\n") and answer.content.endswith("take your time")
    assert answer.edits


async def test_personas_lists_who_is_here_privately(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    personas = [persona("ada", provider="offline", extra="description: A patient tutor.\n"),
                persona("max", provider="offline")]
    async with running_bot(emu, tmp_path / "log.db", personas):
        await emu.wait_for_command("personas")
        listed = await emu.user_invokes("personas", {}, server.general, server.alice)
        answer = await answer_of(emu, listed)

    assert answer.flags & EPHEMERAL
    assert answer.content == "**Ada** (`ada`): A patient tutor.\n**Max** (`max`)"


async def test_reset_leaves_earlier_messages_out_of_the_context(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        await emu.wait_for_command("reset")
        first = await emu.user_says(server.alice, server.general, "remember 42",
                                    mentions=[emu.bot_user])
        await bot.reply_to(first)
        reset = await emu.user_invokes("reset", {}, server.general, server.alice)
        said = await answer_of(emu, reset)
        after = await emu.user_says(server.alice, server.general, "what number?",
                                    mentions=[emu.bot_user])
        await bot.reply_to(after)

    assert "reset the conversation" in said.content
    before_reset, after_reset = fake_openai.requests
    assert [m["content"] for m in before_reset.messages[1:]] == ["remember 42"]
    assert [m["content"] for m in after_reset.messages[1:]] == ["what number?"]


async def test_usage_shows_the_remaining_quota_privately(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    limited = persona("ada", extra="limits: {quota: {messages: 5, scope: user, "
                                   "reset: '0 0 * * *'}}\n")
    async with running_bot(emu, tmp_path / "log.db", [limited, persona("max")],
                           fake_openai) as bot:
        await emu.wait_for_command("usage")
        asked = await emu.user_says(server.alice, server.general, "ada, hi",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        usage = await emu.user_invokes("usage", {}, server.general, server.alice)
        mine = await answer_of(emu, usage)
        theirs = await answer_of(emu, await emu.user_invokes("usage", {}, server.general,
                                                              server.bob))

    assert mine.flags & EPHEMERAL
    assert mine.content.startswith("**Ada**: 4 of 5 replies left per user, next reset <t:")
    assert "Max" not in mine.content
    assert theirs.content.startswith("**Ada**: 5 of 5 replies left per user")


async def test_reload_is_for_admins_and_reports_problems(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: offline, name: x}\nprompt: {system: hi}\n")
    registry = PersonaRegistry()
    watcher = PersonaWatcher(folder, registry, defaults={}, known_providers=PROVIDERS,
                             on_problems=lambda problems: None)
    await watcher.reload()
    admins = AdminSettings(users=frozenset({str(server.alice.id)}))
    async with running_bot(emu, tmp_path / "log.db", (), admins=admins, registry=registry,
                           reload=watcher.reload):
        await emu.wait_for_command("reload")
        refused = await answer_of(emu, await emu.user_invokes("reload", {}, server.general,
                                                               server.bob))
        (folder / "max.yaml").write_text(
            "id: max\nname: Max\nmodel: {provider: offline, name: x}\nprompt: {system: hi}\n")
        (folder / "broken.yaml").write_text("id: broken\nname: Broken\nmodel: nope\n")
        done = await answer_of(emu, await emu.user_invokes("reload", {}, server.general,
                                                            server.alice))

    assert refused.flags & EPHEMERAL
    assert refused.content == "Only the bot's admins can run /reload."
    assert [p.id for p in registry.all()] == ["ada", "max"]
    assert done.flags & EPHEMERAL
    assert done.content.startswith("Reloaded: 2 persona(s) serving (Ada, Max).")
    assert "broken.yaml" in done.content


async def test_a_refused_ask_is_one_private_line(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    guarded = persona("ada", extra=f"permissions: {{deny_users: ['{server.bob.id}']}}\n")
    async with running_bot(emu, tmp_path / "log.db", [guarded], fake_openai) as bot:
        await emu.wait_for_command("ask")
        asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "let me in"},
                                       server.general, server.bob)
        refusal = await answer_of(emu, asked)
        await bot.dispatcher.wait_idle()
        rejected = await bot.events("TriggerRejected")

    assert [c.type for c in emu.interaction(asked.id).callbacks] == [4]
    assert refusal.flags & EPHEMERAL
    assert refusal.content == "You can't talk to Ada here."
    assert [e.data["reason"].split(":")[0] for e in rejected] == ["permission"]
    assert fake_openai.requests == []


async def test_forget_is_for_admins_and_erases_the_person_from_the_context(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    admins = AdminSettings(users=frozenset({str(server.alice.id)}))
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai,
                           admins=admins) as bot:
        await emu.wait_for_command("forget")
        said = await emu.user_says(server.bob, server.general, "my secret is 4711",
                                   mentions=[emu.bot_user])
        await bot.reply_to(said)
        refused = await answer_of(emu, await emu.user_invokes(
            "forget", {"user": str(server.bob.id)}, server.general, server.bob))
        done = await answer_of(emu, await emu.user_invokes(
            "forget", {"user": f"<@{server.bob.id}>"}, server.general, server.alice))
        after = await emu.user_says(server.alice, server.general, "what was it?",
                                    mentions=[emu.bot_user])
        await bot.reply_to(after)
        events = await bot.events("SubjectForgotten")

    assert refused.content == "Only the bot's admins can run /forget."
    assert done.flags & EPHEMERAL and done.content.startswith(f"Forgot {server.bob.id}")
    (erasure,) = events
    assert erasure.data["subject"] == str(server.bob.id)
    assert erasure.data["requested_by"] == str(server.alice.id)
    assert erasure.data["via"] == "command"
    # the next prompt holds the erased placeholder, not what Bob wrote
    last = fake_openai.requests[-1].messages
    assert not any("4711" in str(m.get("content")) for m in last)
    assert any(m.get("content") == "[erased]" for m in last)
