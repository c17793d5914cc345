"""The terminal chat: the same dispatcher and the same log as Discord, platform "console".

Each line is a message to the current persona (an explicit invocation in a DM-like
conversation of the user's own with that persona: stream
``conv:console:<user>:<persona>``), so each persona keeps its own conversation and
``/persona`` switches between them. A conversation new to a persona opens with its
greeting. Replies stream to the output as they arrive. The person at the terminal runs
this process and has its persona files: the permission rules (which name Discord
users, roles and channels) do not apply to them, but rate limits and quotas do. A
refused message always says why, once.

Commands: ``/reset``, ``/usage``, ``/personas``, ``/reload``, ``/greet [N]`` (the shared
commands of :mod:`core.commands`), ``/persona NAME``, ``/attach PATH`` (a file for the
next message, taken in like a Discord attachment: the same caps, kinds and stored
content), ``/help``, ``/quit``. A reasoning model's thinking is shown as the persona's
``reasoning`` setting says (``spoiler``: a line before the reply; ``attach``: the
file's text after it).

Lines come from a :class:`LineSource`: :class:`StreamLines` reads a pipe or any text
stream; on a terminal ``personae chat`` uses :class:`TerminalLines` (prompt_toolkit:
line editing, history, Ctrl-L). Whatever the source, control characters and terminal
escape sequences never enter a message, nor reach the terminal from a reply.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

from ..commands import Caller, CommandReply, CommandSet, PlainStyle, refusal_line
from ..config import AttachmentSettings
from ..dispatcher.admission import PersonaSource
from ..dispatcher.dispatcher import Dispatcher
from ..dispatcher.messages import (
    Author,
    DeliveryReceipt,
    InboundMessage,
    ModerationAlert,
    Notice,
    OutboundReply,
    ReplyTarget,
)
from ..events import RefusalKind
from ..media.fetch import FetchRefused
from ..media.intake import AttachmentIntake, IncomingAttachment, Offered
from ..personas.registry import RegistryChange
from ..problems import Problem

PLATFORM = "console"
TERMINAL = "terminal"
"""``{channel}`` and ``{guild}`` in the terminal unless ``personae chat`` is told others."""
HELP = ("/reset  forget this conversation so far    /usage  your quota and its next reset\n"
        "/persona NAME  talk to another persona    /personas  who is here\n"
        "/greet [N]  the persona's greeting N     /reload  read the persona files again\n"
        "/attach PATH  a file for your next message (images, text, PDF)\n"
        "/forget USER  erase a person's content (admins)\n"
        "/quit  leave (end of input does too)")
_EXPLAINED = (RefusalKind.PERMISSION, RefusalKind.HOP_LIMIT)
"""Refusals whose rule is worth showing after the line people see."""
# CSI and OSC sequences first (so their parameters go too), then any other control
# character; tab is kept (and shown as a space).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (tabs become
    spaces): what a typed line becomes before it is a message, and what a reply
    becomes before it reaches the terminal."""
    return _CONTROL.sub("", _ESCAPES.sub("", text)).replace("\t", " ")


def _printable(text: str) -> str:
    # replies keep their line breaks
    return "\n".join(clean_text(line) for line in text.split("\n"))


class ConsoleSink:
    """Prints replies (streamed as they arrive), greetings and notices to ``out``."""

    def __init__(self, out: TextIO, personas: PersonaSource) -> None:
        self._out = out
        self._personas = personas
        self._streaming: set[tuple[str, str]] = set()
        self._noticed: set[tuple[str, str]] = set()
        self._ids = itertools.count(1)
        self._session = str(time.time_ns())

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        """Finish a streamed reply's line, or print the whole reply."""
        key = (reply.target.message_id, reply.persona_id)
        thinking = " ".join(_printable(reply.spoiler).split())
        if key in self._streaming and not reply.greeting:
            self._streaming.discard(key)
            self._write("\n")
            if thinking:
                self._write(f"  (thinking: {thinking})\n")
        else:
            if thinking:
                self._write(f"  (thinking: {thinking})\n")
            self._write(f"{_printable(reply.persona_name)}: {_printable(reply.text)}\n")
        for file in reply.files:
            text = _printable(file.content.decode("utf-8", errors="replace"))
            self._write(f"  [{_printable(file.filename)}]\n" + "".join(
                f"  | {line}\n" for line in text.splitlines()))
        return DeliveryReceipt(message_ids=(f"{self._session}-out-{next(self._ids)}",))

    async def notice(self, notice: Notice) -> None:
        """A notice on a line of its own, marked as one."""
        key = (notice.target.message_id, notice.persona_id)
        prefix = "\n" if key in self._streaming else ""
        self._streaming.discard(key)
        self._noticed.add(key)
        self._write(f"{prefix}[{_printable(notice.persona_name)}] {_printable(notice.text)}\n")

    async def alert(self, alert: ModerationAlert) -> None:
        """A moderation alert on a line of its own (the operator is the moderator here)."""
        self._write(f"[moderation] {_printable(alert.summary)}\n")

    def noticed(self, message_id: str, persona_id: str) -> bool:
        """Whether a notice about ``message_id`` was shown for ``persona_id`` (and forget it)."""
        key = (message_id, persona_id)
        found = key in self._noticed
        self._noticed.discard(key)
        return found

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """Nothing: the streamed text shows that the persona is answering."""

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """Print a piece of the reply as it arrives."""
        key = (target.message_id, persona_id)
        if key not in self._streaming:
            self._streaming.add(key)
            persona = self._personas.get(persona_id)
            self._write(f"{_printable(persona.name if persona else persona_id)}: ")
        self._write(_printable(text))

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleUser:
    """Who is typing, and where they say they are: ``channel`` and ``guild`` are the
    ``{channel}`` and ``{guild}`` of the prompts."""

    id: str
    display_name: str
    channel: str = TERMINAL
    guild: str = TERMINAL


class LineSource(Protocol):
    """Where typed lines come from."""

    async def next(self, prompt: str) -> str | None:
        """The next line (``prompt`` shown first, where there is a terminal), or None at
        the end of input."""
        ...


class StreamLines:
    """Lines of a text stream (a pipe, a file), read by a daemon thread so a blocked read
    never holds up the loop or the exit. No prompt is shown unless ``prompt`` (then it
    is written to ``out``)."""

    def __init__(self, stdin: TextIO, out: TextIO | None = None) -> None:
        self._stdin = stdin
        self._out = out
        self._lines: asyncio.Queue[str | None] | None = None
        self._wanted = threading.Semaphore(0)

    def _start(self) -> asyncio.Queue[str | None]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            while True:
                self._wanted.acquire()
                line = self._stdin.readline()
                loop.call_soon_threadsafe(lines.put_nowait, line or None)
                if not line:
                    return

        threading.Thread(target=read, daemon=True, name="console-stdin").start()
        return lines

    async def next(self, prompt: str) -> str | None:
        """The next line without its line break, or None at the end of input."""
        if self._lines is None:
            self._lines = self._start()
        if self._out is not None:
            self._out.write(prompt)
            self._out.flush()
        self._wanted.release()
        line = await self._lines.get()
        return None if line is None else line.rstrip("\r\n")


class TerminalLines:
    """Lines typed at a terminal, with prompt_toolkit: editing, history (Up and Down,
    kept in ``history_file`` when given), Ctrl-L to clear the screen. Ctrl-D (or
    Ctrl-C on an empty line) ends the input."""

    def __init__(self, history_file: str | None = None, **session_options: Any) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        history = FileHistory(history_file) if history_file else InMemoryHistory()
        self._session: Any = PromptSession(history=history, **session_options)

    async def next(self, prompt: str) -> str | None:
        """The next line, or None at the end of input."""
        try:
            return str(await self._session.prompt_async(prompt))
        except (EOFError, KeyboardInterrupt):
            return None


class ConsoleChat:
    """One terminal session with a persona (switchable with ``/persona``)."""

    def __init__(self, dispatcher: Dispatcher, commands: CommandSet, personas: PersonaSource,
                 persona_id: str, user: ConsoleUser, lines: LineSource, out: TextIO,
                 sink: ConsoleSink, attachments: AttachmentSettings | None = None) -> None:
        self._dispatcher = dispatcher
        self._commands = commands
        self._personas = personas
        self._persona_id = persona_id
        self._user = user
        self._lines = lines
        self._out = out
        self._sink = sink
        self._session = str(time.time_ns())
        self._ids = itertools.count(1)
        self._intake = AttachmentIntake(attachments or AttachmentSettings())
        self._staged: list[Path] = []

    async def run(self) -> None:
        """Chat until ``/quit`` or the end of input."""
        persona = self._personas.get(self._persona_id)
        self._say(f"chatting with {persona.name if persona else self._persona_id}; "
                  "/help for commands")
        await self._open()
        while True:
            line = await self._lines.next(f"{self._user.display_name}> ")
            if line is None:
                return
            text = clean_text(line).strip()
            if not text:
                continue
            if text.startswith("/"):
                if not await self._command(text):
                    return
            else:
                await self._send(text)

    async def _open(self) -> None:
        """Greet, when the conversation with the current persona is new to it."""
        # posted (the sink prints it), or nothing to say: no greeting, or not new
        await self._commands.greet(self._caller(), self._persona_id, only_if_new=True)

    async def _send(self, text: str) -> None:
        message = self._message(text)
        if self._staged:
            files = await self._take_files(self._staged)
            self._staged = []
            message = replace(message, attachments=files)
        result = await self._dispatcher.ingest(message)
        await asyncio.gather(*result.replies)
        await self._dispatcher.wait_idle()  # notices about this message are shown by now
        for persona_id, reason in result.rejected:
            if self._sink.noticed(message.message_id, persona_id):
                continue
            persona = self._personas.get(persona_id)
            line = refusal_line(persona, reason) if persona else f"{persona_id} will not answer."
            detail = f" ({reason})" if reason.kind in _EXPLAINED else ""
            self._say(f"{line}{detail}")

    async def _command(self, text: str) -> bool:
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        if command == "/quit":
            return False
        if command == "/reset":
            answer = await self._commands.reset(self._caller(), self._persona_id)
            self._say("conversation reset: earlier messages are forgotten" if answer.public
                      else answer.text)
            await self._open()
        elif command == "/usage":
            await self._usage()
        elif command == "/personas":
            self._say((await self._commands.personas(self._caller(), PlainStyle())).text)
        elif command == "/reload":
            self._say((await self._commands.reload(self._caller())).text)
        elif command == "/forget":
            self._say((await self._commands.forget(self._caller(), argument)).text)
        elif command == "/persona":
            await self._switch(argument)
        elif command == "/greet":
            await self._greet(argument)
        elif command == "/attach":
            self._attach(argument)
        elif command == "/help":
            self._say(HELP)
        else:
            self._say(f"unknown command {command}; {HELP}")
        return True

    async def _greet(self, argument: str) -> None:
        which = None
        if argument:
            if not argument.isdigit():
                self._say("/greet takes a greeting's number: /greet 2")
                return
            which = int(argument)
        reply = await self._commands.greet(self._caller(), self._persona_id, which)
        self._say(reply.text)

    async def _usage(self) -> None:
        found = await self._commands.usage(self._caller(), self._persona_id)
        if isinstance(found, CommandReply):
            self._say(found.text)
            return
        for usage in found:
            pid, status = usage.persona.id, usage.quota
            if status is None:
                self._say(f"{pid} has no quota")
            else:
                parts = []
                if status.token_limit is not None:
                    parts.append(f"{status.tokens_left} of {status.token_limit} tokens left")
                if status.message_limit is not None:
                    parts.append(f"{status.messages_left} of {status.message_limit} replies left")
                when = (status.next_reset.strftime("%Y-%m-%d %H:%M %Z") if status.next_reset
                        else "never")
                self._say(f"{pid} quota per {status.scope}: {', '.join(parts)}; "
                          f"next reset {when}")
            if usage.rate_tokens is not None:
                self._say(f"rate limit: {int(usage.rate_tokens)} message(s) available now")

    def _attach(self, argument: str) -> None:
        path = Path(argument.strip("'\"")).expanduser()
        if not argument:
            self._say("usage: /attach PATH (the file goes with your next message)")
        elif not path.is_file():
            self._say(f"no such file: {path}")
        else:
            self._staged.append(path)
            self._say(f"{path.name} ({path.stat().st_size} bytes) goes with your next message")

    async def _take_files(self, paths: Sequence[Path]) -> tuple[IncomingAttachment, ...]:
        offered = [Offered(id=f"{self._session}-file-{next(self._ids)}", filename=p.name,
                           media_type=mimetypes.guess_type(p.name)[0] or "",
                           size=p.stat().st_size if p.exists() else -1, url=None)
                   for p in paths]
        by_id = dict(zip((o.id for o in offered), paths, strict=True))

        async def read(item: Offered, max_bytes: int, timeout_s: float) -> bytes:
            return await asyncio.to_thread(_read_file, by_id[item.id], max_bytes)

        files = await self._intake.take(offered, read)
        for item in files:
            if item.attachment.refused:
                self._say(f"{item.attachment.filename} not taken: {item.attachment.refused}")
        return files

    async def _switch(self, name: str) -> None:
        match = self._commands.find(name) if name else None
        if match is None:
            known = ", ".join(p.id for p in self._personas.all())
            self._say(f"no persona {name!r}; known: {known}")
            return
        self._persona_id = match.id
        self._say(f"now chatting with {match.name}")
        await self._open()

    def _caller(self) -> Caller:
        return Caller(platform=PLATFORM, command_id=f"{self._session}-{next(self._ids)}",
                      author=Author(id=self._user.id, display_name=self._user.display_name,
                                    operator=True),
                      channel_id=conversation_channel(self._user.id, self._persona_id),
                      is_dm=True, channel_name=self._user.channel, guild_name=self._user.guild,
                      sent_at=time.time())

    def _message(self, text: str) -> InboundMessage:
        return self._caller().message(text, self._persona_id)

    def _say(self, text: str) -> None:
        self._out.write(f"* {text}\n")
        self._out.flush()


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise FetchRefused(f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise FetchRefused("over the size cap")
    return data


def conversation_channel(user_id: str, persona_id: str) -> str:
    """The channel id of ``user_id``'s terminal conversation with ``persona_id``."""
    return f"{user_id}:{persona_id}"


class ConsoleAdapter:
    """The terminal as a :class:`core.app.Platform`: prints replies, reads a chat."""

    name = PLATFORM
    roles = None
    """The terminal's person has no roles, and that is known."""

    def __init__(self, personas: PersonaSource, persona_id: str, user: ConsoleUser,
                 stdin: TextIO | LineSource, out: TextIO, *, prompt: bool = False,
                 attachments: AttachmentSettings | None = None) -> None:
        self.sink = ConsoleSink(out, personas)
        self._personas = personas
        self._persona_id = persona_id
        self._user = user
        self._lines: LineSource = (stdin if not hasattr(stdin, "readline") else
                                   StreamLines(stdin, out if prompt else None))  # type: ignore[arg-type]
        self._out = out
        self._attachments = attachments
        self._chat: ConsoleChat | None = None
        self._shown: set[Problem] = set()

    def attach(self, dispatcher: Dispatcher, commands: CommandSet) -> None:
        """Chat through ``dispatcher``; ``/commands`` are ``commands``."""
        self._chat = ConsoleChat(dispatcher, commands, self._personas, self._persona_id,
                                 self._user, self._lines, self._out, self.sink,
                                 self._attachments)

    async def run(self) -> None:
        """Chat until ``/quit`` or the end of input."""
        assert self._chat is not None, "attach the adapter to a dispatcher first"
        await self._chat.run()

    def already_shown(self, problems: Sequence[Problem]) -> None:
        """Problems the person was told about already (at start-up)."""
        self._shown = set(problems)

    def reloaded(self, problems: Sequence[Problem]) -> None:
        """Show what a persona reload found that was not shown before (a watcher's
        ``on_problems``): the file, line and column of each, the last good version
        serving meanwhile."""
        new = [p for p in problems if p not in self._shown]
        self._shown = set(problems)
        for problem in new:
            self._say(f"{problem} (the last good version keeps serving)")

    def changed(self, change: RegistryChange) -> None:
        """Say which personas a reload changed (a watcher's ``on_reloaded``)."""
        if self._chat is None:
            return  # the first load
        for persona_id in change.updated + change.added:
            persona = self._personas.get(persona_id)
            self._say(f"{persona.name if persona else persona_id} reloaded")
        for persona_id in change.retired:
            self._say(f"{persona_id} is gone (its file was removed)")

    def _say(self, text: str) -> None:
        self._out.write(f"* {text}\n")
        self._out.flush()

    def stop_intake(self) -> None:
        """Nothing to stop: the chat has ended when the runtime closes."""

    async def close(self) -> None:
        """Nothing to let go of."""


def persona_choices(personas: Sequence[str]) -> str:
    """The known persona ids, for messages."""
    return ", ".join(sorted(personas)) or "(none)"
