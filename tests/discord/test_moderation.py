"""Moderation end to end: the real disnake client against the Discord emulator, the real
openai SDK against the fake server's ``/v1/moderations`` (and its chat completions).

A person's message is checked before the model sees it, a reply before it is
delivered; every decision is a ModerationChecked event that ``personae explain`` and
the timeline show; a refusal is a short notice, a flag a warning line, an alert a
message in the moderators' channel with a link; bypass roles skip the check on the
way in; a failing provider is the configured policy (open or closed), within the
timeout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from core.app import moderator_for
from core.cli import cli
from core.config import Config, load_config
from core.credentials import Secrets
from core.moderation.moderator import Moderator
from tests.fakes.discord import Channel, DiscordEmulator, Message, Role, User
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import Bot, persona, running_bot, until_recorded

ADA = persona("ada", extra="triggers: {keywords: [ada]}\n")
IN_NOTICE = "I can't respond to that message."
OUT_NOTICE = "I wrote a reply I can't share here; please try asking differently."


def write_config(tmp_path: Path, fake: FakeOpenAI, moderation: str) -> Config:
    """A config.yaml whose log is the tests' database, with ``moderation`` (YAML lines
    under ``moderation:``), read by the real loader."""
    body = "\n".join(f"  {line}" for line in moderation.strip().splitlines())
    (tmp_path / "personas").mkdir(exist_ok=True)
    (tmp_path / "config.yaml").write_text(
        f"database: {{path: log.db}}\npersonas: {{dir: personas}}\n"
        f"providers:\n  fake:\n    base_url: {fake.base_url}\n"
        f"moderation:\n{body}\n")
    return load_config(tmp_path / "config.yaml")


def moderator(tmp_path: Path, fake: FakeOpenAI, moderation: str) -> Moderator:
    found = moderator_for(write_config(tmp_path, fake, moderation), Secrets({}))
    assert found is not None
    return found


def insults_checked(tmp_path: Path, fake: FakeOpenAI, *, bypass: Role) -> Moderator:
    """Moderation of what comes in only, flagging "insult", skipped for ``bypass``."""
    fake.moderate("insult", harassment=0.97)
    return moderator(tmp_path, fake, f"provider: fake\noutbound: false\n"
                                     f"bypass_roles: ['{bypass.id}']\n")


def invoke(tmp_path: Path, *args: str) -> str:
    """The command's output, with the terminal's line wrapping undone."""
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


async def settled(bot: Bot, message: Message) -> None:
    await until_recorded(bot, message)
    await bot.dispatcher.wait_idle()


async def checks(bot: Bot, message: Message) -> dict[str, dict]:
    """The ModerationChecked events about ``message``, by direction."""
    return {e.data["direction"]: dict(e.data) for e in await bot.events("ModerationChecked")
            if e.data["message_id"] == str(message.id)}


def texts(bot: Bot, channel: Channel, after: Message) -> list[str]:
    return [m.content for m in bot.ours_in(channel) if m.id > after.id]


def chat_prompts(fake: FakeOpenAI) -> list[str]:
    return [str(m.get("content")) for r in fake.requests for m in r.messages]


def link(server: Server, channel: Channel, message_id: int | str) -> str:
    return f"https://discord.com/channels/{server.guild.id}/{channel.id}/{message_id}"


async def test_a_blocked_message_never_reaches_the_model_is_refused_recorded_and_explained(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    mods = emu.add_text_channel(server.guild, "mods")
    fake_openai.moderate("insult", harassment=0.97)
    checker = moderator(tmp_path, fake_openai, f"""
provider: fake
thresholds: {{default: {{flag: 0.5, block: 0.8}}}}
actions: {{block: [refuse, alert]}}
alert_channel: {mods.id}
""")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        fine = await emu.user_says(server.alice, server.general, "ada, hello there")
        await settled(bot, fine)
        bad = await emu.user_says(server.alice, server.general, "ada, take this insult")
        await settled(bot, bad)
        found = await checks(bot, bad)
        failed = [e.data for e in await bot.events("ModelFailed")]
        alerts = [m.content for m in emu.messages_in(mods)]
        said = texts(bot, server.general, bad)

    assert not any("insult" in text for text in chat_prompts(fake_openai))  # no model call
    inputs = [r.body["input"] for r in fake_openai.moderation_requests]
    assert inputs[0] == "ada, hello there" and inputs[2] == "ada, take this insult"
    assert inputs[1].endswith("to: ada, hello there") and len(inputs) == 3  # the reply, out
    assert said == [IN_NOTICE]
    checked = found["in"]
    assert checked["verdict"] == "block" and checked["matched"] == ["harassment"]
    assert checked["scores"]["harassment"] == 0.97
    assert checked["thresholds"]["harassment"] == {"flag": 0.5, "block": 0.8}
    assert checked["actions"] == ["refuse", "alert"]
    assert checked["sources"] == ["fake:omni-moderation-latest"]
    assert "out" not in found  # no reply, nothing to check on the way out
    assert [(f["message_id"], f["error_class"]) for f in failed] == [(str(bad.id), "moderation")]
    assert len(alerts) == 1 and link(server, server.general, bad.id) in alerts[0]
    assert "harassment 0.97" in alerts[0] and "insult" not in alerts[0]  # no content

    explained = invoke(tmp_path, "explain", str(bad.id))
    assert "stopped: refused by moderation of the message to ada" in explained
    assert "block; harassment 0.970 >= block 0.8" in explained
    assert "prompt not rebuilt" not in explained and "attempts" not in explained  # no call
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "explain",
                                      str(bad.id), "--json"])
    (call,) = json.loads(result.stdout)["calls"]
    assert call["stopped_by"].startswith("refused by moderation of the message to ada")
    assert [m["verdict"] for m in call["moderation"]] == ["block"]
    assert call["outcome"]["error_class"] == "moderation"
    timeline = invoke(tmp_path, "replay", "--type", "ModerationChecked")
    assert f"moderation of the message to ada on message {bad.id}: block" in timeline
    assert f"moderation of the message to ada on message {fine.id}: pass" in timeline


async def test_a_blocked_reply_is_not_delivered_and_the_person_is_told(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.answer("story", "here is a gory story")
    fake_openai.moderate("gory", violence=0.9)
    checker = moderator(tmp_path, fake_openai, "provider: fake\n")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        asked = await emu.user_says(server.alice, server.general, "ada, tell me a story")
        await settled(bot, asked)
        found = await checks(bot, asked)
        outcomes = {e.type: dict(e.data) for e in await bot.events("ModelReplied",
                                                                  "ReplyDelivered",
                                                                  "ReplyFailed")}
        said = texts(bot, server.general, asked)

    assert found["in"]["verdict"] == "pass" and found["out"]["verdict"] == "block"
    assert found["out"]["matched"] == ["violence"] and found["out"]["actions"] == ["refuse"]
    assert outcomes["ModelReplied"]["text"] == "here is a gory story"  # kept in the log
    assert "ReplyDelivered" not in outcomes
    assert outcomes["ReplyFailed"]["error"].startswith("refused by moderation (out): block")
    assert said == [OUT_NOTICE] and not any("gory" in t for t in said)
    explained = invoke(tmp_path, "explain", str(asked.id))
    assert "stopped: refused by moderation of the reply by ada" in explained
    assert "violence 0.900 >= block 0.8" in explained


async def test_a_flagged_reply_is_delivered_with_a_warning_and_the_moderators_get_a_link(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    mods = emu.add_text_channel(server.guild, "mods")
    fake_openai.answer("joke", "an edgy joke")
    fake_openai.moderate("edgy", harassment=0.6)
    checker = moderator(tmp_path, fake_openai, f"""
provider: fake
actions: {{flag: [warn, alert]}}
alert_channel: '{mods.id}'
warning: "Heads up: {{categories}}."
""")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        asked = await emu.user_says(server.alice, server.general, "ada, a joke please")
        await settled(bot, asked)
        found = await checks(bot, asked)
        said = [m for m in bot.ours_in(server.general) if m.id > asked.id]
        alerts = [m.content for m in emu.messages_in(mods)]

    assert found["out"]["verdict"] == "flag" and found["out"]["actions"] == ["warn", "alert"]
    assert [m.content for m in said] == ["Heads up: harassment.\nan edgy joke"]
    assert len(alerts) == 1 and link(server, server.general, said[0].id) in alerts[0]
    assert alerts[0].startswith("Moderation: Flagged a reply by Ada: harassment 0.60")


def trusted_member(emu: DiscordEmulator, server: Server, role: Role) -> User:
    carol = emu.add_user("carol")
    emu.add_member(server.guild, carol, roles=[role])
    return carol


async def test_a_bypass_role_skips_the_inbound_check_and_is_recorded_as_bypassed(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    trusted = emu.add_role(server.guild, "trusted")
    carol = trusted_member(emu, server, trusted)
    checker = insults_checked(tmp_path, fake_openai, bypass=trusted)
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        hers = await emu.user_says(carol, server.general, "ada, quoting an insult")
        await settled(bot, hers)
        his = await emu.user_says(server.bob, server.general, "ada, quoting an insult")
        await settled(bot, his)
        found_hers, found_his = await checks(bot, hers), await checks(bot, his)
        replies_to_her = texts(bot, server.general, hers)

    assert found_hers["in"]["bypassed"] == "role" and found_hers["in"]["verdict"] == "pass"
    assert replies_to_her[0].endswith("to: ada, quoting an insult")
    assert found_his["in"]["verdict"] == "block"  # the same words without the role
    assert len(fake_openai.moderation_requests) == 1  # only bob's message was sent


async def test_the_local_word_list_blocks_whole_words_without_any_provider(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    checker = moderator(tmp_path, fake_openai, """
words: {harassment: [dimwit, "utter fool"]}
patterns: {spam: ['buy\\s+cheap\\s+\\w+']}
outbound: false
""")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        said = []
        for text in ("ada, you DIMWIT!", "ada buy  cheap watches", "ada, dimwitted is fine"):
            said.append(await emu.user_says(server.alice, server.general, text))
            await settled(bot, said[-1])
        rude, spam, inside = said
        found = {m.id: (await checks(bot, m))["in"] for m in (rude, spam, inside)}

    assert fake_openai.moderation_requests == []
    assert (found[rude.id]["verdict"], found[rude.id]["matched"]) == ("block", ["harassment"])
    assert found[rude.id]["sources"] == ["local"]
    assert (found[spam.id]["verdict"], found[spam.id]["matched"]) == ("block", ["spam"])
    assert found[inside.id]["verdict"] == "pass"  # not the whole word
    assert texts(bot, server.general, rude)[:1] == [IN_NOTICE]
    assert texts(bot, server.general, inside)[0].endswith("to: ada, dimwitted is fine")


async def test_a_failing_provider_fails_open_within_the_timeout(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script_moderation(Fault.stall(30), Fault.server_error(503), Fault.garbage())
    checker = moderator(tmp_path, fake_openai, """
provider: fake
outbound: false
timeout: 300ms
fail: open
""")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        started = time.monotonic()
        stalled = await emu.user_says(server.alice, server.general, "ada, first")
        await bot.reply_to(stalled, timeout=5)
        took = time.monotonic() - started
        errored = await emu.user_says(server.alice, server.general, "ada, second")
        garbled = await emu.user_says(server.alice, server.general, "ada, third")
        for message in (errored, garbled):
            await settled(bot, message)
        found = [(await checks(bot, m))["in"] for m in (stalled, errored, garbled)]
        replies = texts(bot, server.general, stalled)

    assert took < 3.0  # the 30 s stall was cut at the 300 ms timeout
    assert [f["error"] for f in found] == ["timeout", "http_503", "garbage"]
    assert [f["verdict"] for f in found] == ["pass"] * 3
    assert not any(f["failed_closed"] for f in found)
    assert [r.rsplit("to: ", 1)[1] for r in replies] == ["ada, first", "ada, second",
                                                         "ada, third"]
    explained = invoke(tmp_path, "explain", str(errored.id))
    assert "provider failed (http_503), fail open" in explained


async def test_a_failing_provider_fails_closed_with_a_notice_and_no_model_call(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script_moderation(Fault.server_error(500), Fault.drop_connection())
    checker = moderator(tmp_path, fake_openai, """
provider: fake
fail: closed
""")
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        first = await emu.user_says(server.alice, server.general, "ada, one")
        second = await emu.user_says(server.alice, server.general, "ada, two")
        for message in (first, second):
            await settled(bot, message)
        found = [(await checks(bot, m))["in"] for m in (first, second)]
        said = texts(bot, server.general, first)

    assert [(f["error"], f["verdict"], f["failed_closed"]) for f in found] == [
        ("http_500", "block", True), ("connection", "block", True)]
    assert fake_openai.requests == []  # the model was never asked
    assert said == [IN_NOTICE, IN_NOTICE]
    explained = invoke(tmp_path, "explain", str(first.id))
    assert "provider failed (http_500), fail closed: refused" in explained


async def test_in_a_dm_the_bypass_holds_only_for_roles_that_could_be_looked_up(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    trusted = emu.add_role(server.guild, "trusted")
    carol = trusted_member(emu, server, trusted)
    dave = emu.add_user("dave")
    emu.add_member(server.guild, dave, roles=[trusted])
    checker = insults_checked(tmp_path, fake_openai, bypass=trusted)
    async with running_bot(emu, tmp_path / "log.db", [ADA], fake_openai,
                           moderator=checker) as bot:
        looked_up = await emu.user_says(carol, emu.dm_channel(carol), "ada, quoting an insult")
        await settled(bot, looked_up)
        emu.server_error("GET /guilds/{guild_id}/members/{user_id}", times=5, status=403)
        unknown = await emu.user_says(dave, emu.dm_channel(dave), "ada, quoting an insult")
        await settled(bot, unknown)
        found = [(await checks(bot, m))["in"] for m in (looked_up, unknown)]
        said = texts(bot, emu.dm_channel(dave), unknown)

    # a DM carries no roles: they were looked up in the server, and when that failed
    # the message was checked like anyone's (unknown roles never bypass)
    assert found[0]["bypassed"] == "role"
    assert found[1]["bypassed"] is None and found[1]["verdict"] == "block"
    assert len(said) == 1 and said[0].endswith(IN_NOTICE)


async def test_a_streaming_persona_shows_nothing_of_a_reply_before_it_is_checked(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    streamer = persona("ada", extra="triggers: {keywords: [ada]}\n"
                                    "delivery: {stream_edits: true}\n")
    async with FakeOpenAI(tokens_per_second=200) as fake:
        fake.answer("story", "here is a long and gory story told slowly")
        fake.moderate("gory", violence=0.9)
        checker = moderator(tmp_path, fake, "provider: fake\n")
        async with running_bot(emu, tmp_path / "log.db", [streamer], fake,
                               moderator=checker) as bot:
            asked = await emu.user_says(server.alice, server.general, "ada, tell me a story")
            await settled(bot, asked)
            posted = [m.content for m in emu.messages_in(server.general, include_deleted=True)
                      if bot.is_ours(m)]
    edits = emu.requests_to("PATCH /channels/{channel_id}/messages/{message_id}")
    assert posted == [OUT_NOTICE] and edits == []  # no preview was ever posted
