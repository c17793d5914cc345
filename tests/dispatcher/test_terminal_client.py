"""``personae chat`` as a real client: it opens with the greeting, hot-reloads the persona
files (a broken file is reported, located, and the last good version keeps serving),
says why a message is refused every time and once, lets the person at the terminal talk
to any persona, edits lines with history, and never lets a control character into a
message."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from core.adapters.console import TerminalLines, clean_text
from eventstore import SQLiteLog

from .conftest import persona_yaml

ROOT = Path(__file__).resolve().parents[2]


def workspace(tmp_path: Path, ada_extra: str = "") -> Path:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        persona_yaml("ada", provider="offline", extra=ada_extra), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n"
                      "providers:\n  openai: {api_key_env: TEST_ONLY_OPENAI_KEY}\n",
                      encoding="utf-8")
    return config


class Chat:
    """``personae chat`` in its own process, typed into line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, config: Path, *args: str) -> Chat:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PERSONAE_CONFIG", "TEST_ONLY_OPENAI_KEY")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", "--config", str(config), "chat", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env)
        return cls(process)

    async def until(self, wanted: str, timeout: float = 20.0) -> str:  # noqa: ASYNC109
        """The next output line holding ``wanted`` (every line read is kept)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"the chat ended before {wanted!r}: {self.lines}"
                self.lines.append(line.rstrip("\n"))
                if wanted in line:
                    return line.rstrip("\n")

    async def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def quit(self) -> str:
        await self.say("/quit")
        _, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0, err.decode()
        return err.decode()


async def test_the_chat_opens_with_the_greeting_and_hot_reloads_keeping_the_last_good_version(
        tmp_path: Path) -> None:
    config = workspace(tmp_path, "  greeting: Hello {user}, I am {persona}.\n")
    ada = tmp_path / "personas" / "ada.yaml"
    chat = await Chat.start(config, "ada", "--user", "Grace")
    try:
        await chat.until("chatting with Ada")
        greeting = await chat.until("Ada: ")
        await chat.say("hello")
        await chat.until("You said: hello")
        good = ada.read_text(encoding="utf-8")
        ada.write_text(good + "limits: {rate: {capacity: 5, per: soon}}\n", encoding="utf-8")
        broken = await chat.until("keeps serving")
        await chat.say("still there?")
        await chat.until("You said: still there?")
        ada.write_text(good.replace("You are {persona}.", "You are {persona}, renewed."),
                       encoding="utf-8")
        await chat.until("Ada reloaded")
        await chat.say("and now?")
        await chat.until("You said: and now?")
    finally:
        await chat.quit()
    assert greeting == "Ada: Hello Grace, I am Ada."
    assert chat.lines.index(greeting) == 1  # the greeting comes first, before any message
    assert broken.startswith(f"* {ada}:")
    assert 'limits.rate.per: "soon" is not a duration' in broken
    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        replies = log.read_all(types=["ModelReplied"])
        versions = log.read_all(types=["PersonaVersionRecorded"])
    finally:
        log.close()
    assert len({r.data["persona_version"] for r in replies[:2]}) == 1  # the last good one
    # {guild} and {channel} say where the conversation is, not nothing ("on the  server")
    assert (replies[0].data["variables"]["guild"], replies[0].data["variables"]["channel"]) \
        == ("terminal", "terminal")
    assert replies[2].data["persona_version"] != replies[0].data["persona_version"]
    assert "renewed" in next(v.data["source_text"] for v in versions
                             if v.data["version"] == replies[2].data["persona_version"])


async def test_a_refused_message_always_says_why_once(tmp_path: Path) -> None:
    config = workspace(tmp_path, "limits: {rate: {capacity: 1, per: 1h}}\n")
    chat = await Chat.start(config, "ada")
    try:
        await chat.say("one")
        await chat.until("You said: one")
        for text in ("two", "three", "four", "five"):
            await chat.say(text)
        await chat.say("/personas")
        await chat.until("Ada (ada)")
    finally:
        await chat.quit()
    notice = "You're sending messages faster than I can answer"
    assert sum(notice in line for line in chat.lines) == 4, chat.lines


async def test_the_person_at_the_terminal_can_talk_to_the_narrator_from_the_readme(
        tmp_path: Path) -> None:
    config = workspace(tmp_path)
    shipped = (ROOT / "personas" / "narrator.yaml").read_text(encoding="utf-8")
    (tmp_path / "personas" / "narrator.yaml").write_text(shipped, encoding="utf-8")
    chat = await Chat.start(config, "ada", "--offline")
    try:
        await chat.say("/persona narrator")
        await chat.until("now chatting with The Narrator")
        # the narrator answers DMs nowhere and only in its campaign channel on Discord
        greeting = await chat.until("The Narrator: ")
        await chat.say("I open \x1b[1mthe\x1b[0m door\x07")  # piped, escapes and all
        answer = await chat.until("You said: I open the door")
    finally:
        await chat.quit()
    assert "rain follows you in" in greeting or "watchtower" in greeting
    assert answer.startswith("The Narrator: ")
    assert not any("will not answer" in line or "can't talk" in line for line in chat.lines)


async def test_line_editing_recalls_history_and_keeps_control_characters_out() -> None:
    with create_pipe_input() as typed:
        lines = TerminalLines(input=typed, output=DummyOutput())
        typed.send_text("hello there\r")
        first = await lines.next("> ")
        typed.send_text("\x1b[A\r")  # Up: the line before, again
        again = await lines.next("> ")
        typed.send_text("ab\x0ccd\r")  # Ctrl-L clears the screen, and types nothing
        cleared = await lines.next("> ")
        typed.send_text("x\x07y\r")  # a bell typed (Ctrl-G)
        pasted = await lines.next("> ")
        typed.send_text("\x04")  # Ctrl-D: the end of input
        ended = await lines.next("> ")
    assert (first, again, cleared) == ("hello there", "hello there", "abcd")
    assert pasted == "xy" and ended is None
    # what a pipe (or a paste prompt_toolkit lets through) brings is cleaned before it is
    # a message: escape sequences and control characters never get in
    assert clean_text("\x1b[31mred\x1b[0m x\x07y\x1b]0;title\x07") == "red xy"
    assert clean_text("\x1b[31mred\x1b[0m\ttab\x00\x9b") == "red tab"
