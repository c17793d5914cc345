"""The terminal chat: the same dispatcher and the same log as Discord, platform "console".

Lines are read from stdin one at a time (a terminal or a pipe); each is a message
to the current persona (an explicit invocation in a DM-like conversation of the
user's own, stream ``conv:console:<user>``). Replies stream to stdout as they
arrive. Commands: ``/reset``, ``/usage``, ``/personas``, ``/reload`` (the shared
commands of :mod:`core.commands`), ``/persona NAME``, ``/attach PATH`` (a file for the
next message, taken in like a Discord attachment: the same caps, kinds and stored
content), ``/help``, ``/quit``. A reasoning model's thinking is shown as the persona's
``reasoning`` setting says (``spoiler``: a line before the reply; ``attach``: the
file's text after it).
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from ..commands import Caller, CommandReply, CommandSet, PlainStyle
from ..config import AttachmentSettings
from ..dispatcher.admission import PersonaSource
from ..dispatcher.dispatcher import Dispatcher
from ..dispatcher.messages import (
    Author,
    DeliveryReceipt,
    InboundMessage,
    Notice,
    OutboundReply,
    ReplyTarget,
)
from ..events import RefusalKind
from ..media.fetch import FetchRefused
from ..media.intake import AttachmentIntake, IncomingAttachment, Offered

PLATFORM = "console"
HELP = ("/reset  forget the conversation so far    /usage  your quota and its next reset\n"
        "/persona NAME  talk to another persona   /personas  who is here\n"
        "/attach PATH  a file for your next message (images, text, PDF)\n"
        "/reload  read the persona files again    /quit  leave (end of input does too)")
_NOTICED = (RefusalKind.RATE_LIMITED, RefusalKind.QUOTA, RefusalKind.BUSY)
"""Refusals the persona's own notice explains (sent once per window)."""


class ConsoleSink:
    """Prints replies (streamed as they arrive) and notices to ``out``."""

    def __init__(self, out: TextIO, personas: PersonaSource) -> None:
        self._out = out
        self._personas = personas
        self._streaming: set[tuple[str, str]] = set()
        self._ids = itertools.count(1)
        self._session = str(time.time_ns())

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        """Finish a streamed reply's line, or print the whole reply."""
        key = (reply.target.message_id, reply.persona_id)
        thinking = " ".join(reply.spoiler.split())
        if key in self._streaming:
            self._streaming.discard(key)
            self._write("\n")
            if thinking:
                self._write(f"  (thinking: {thinking})\n")
        else:
            if thinking:
                self._write(f"  (thinking: {thinking})\n")
            self._write(f"{reply.persona_name}: {reply.text}\n")
        for file in reply.files:
            text = file.content.decode("utf-8", errors="replace")
            self._write(f"  [{file.filename}]\n" + "".join(
                f"  | {line}\n" for line in text.splitlines()))
        return DeliveryReceipt(message_ids=(f"{self._session}-out-{next(self._ids)}",))

    async def notice(self, notice: Notice) -> None:
        """A notice on a line of its own, marked as one."""
        key = (notice.target.message_id, notice.persona_id)
        prefix = "\n" if key in self._streaming else ""
        self._streaming.discard(key)
        self._write(f"{prefix}[{notice.persona_name}] {notice.text}\n")

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """Nothing: the streamed text shows that the persona is answering."""

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """Print a piece of the reply as it arrives."""
        key = (target.message_id, persona_id)
        if key not in self._streaming:
            self._streaming.add(key)
            persona = self._personas.get(persona_id)
            self._write(f"{persona.name if persona else persona_id}: ")
        self._write(text)

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleUser:
    """Who is typing: their id doubles as the conversation's channel id."""

    id: str
    display_name: str


class ConsoleChat:
    """One terminal session with a persona (switchable with ``/persona``)."""

    def __init__(self, dispatcher: Dispatcher, commands: CommandSet, personas: PersonaSource,
                 persona_id: str, user: ConsoleUser, stdin: TextIO, out: TextIO, *,
                 prompt: bool, attachments: AttachmentSettings | None = None) -> None:
        self._dispatcher = dispatcher
        self._commands = commands
        self._personas = personas
        self._persona_id = persona_id
        self._user = user
        self._stdin = stdin
        self._out = out
        self._prompt = prompt
        self._session = str(time.time_ns())
        self._ids = itertools.count(1)
        self._intake = AttachmentIntake(attachments or AttachmentSettings())
        self._staged: list[Path] = []

    async def run(self) -> None:
        """Chat until ``/quit`` or the end of input."""
        lines = _LineReader(self._stdin)
        persona = self._personas.get(self._persona_id)
        self._say(f"chatting with {persona.name if persona else self._persona_id}; "
                  "/help for commands")
        while True:
            if self._prompt:
                self._out.write(f"{self._user.display_name}> ")
                self._out.flush()
            line = await lines.next()
            if line is None:
                return
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if text.startswith("/") and not await self._command(text):
                return
            if not text.startswith("/"):
                await self._send(text)

    async def _send(self, text: str) -> None:
        message = self._message(text)
        if self._staged:
            files = await self._take_files(self._staged)
            self._staged = []
            message = replace(message, attachments=files)
        result = await self._dispatcher.ingest(message)
        for persona_id, reason in result.rejected:
            if reason.kind not in _NOTICED:
                self._say(f"({persona_id} will not answer: {reason})")
        await asyncio.gather(*result.replies)
        await self._dispatcher.wait_idle()

    async def _command(self, text: str) -> bool:
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        if command == "/quit":
            return False
        if command == "/reset":
            answer = await self._commands.reset(self._caller(), self._persona_id)
            self._say("conversation reset: earlier messages are forgotten" if answer.public
                      else answer.text)
        elif command == "/usage":
            await self._usage()
        elif command == "/personas":
            self._say((await self._commands.personas(self._caller(), PlainStyle())).text)
        elif command == "/reload":
            self._say((await self._commands.reload(self._caller())).text)
        elif command == "/persona":
            self._switch(argument)
        elif command == "/attach":
            self._attach(argument)
        elif command == "/help":
            self._say(HELP)
        else:
            self._say(f"unknown command {command}; {HELP}")
        return True

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
        path = Path(argument.strip().strip("'\"")).expanduser()
        if not argument.strip():
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

    def _switch(self, name: str) -> None:
        match = self._commands.find(name)
        if match is None:
            known = ", ".join(p.id for p in self._personas.all())
            self._say(f"no persona {name!r}; known: {known}")
            return
        self._persona_id = match.id
        self._say(f"now chatting with {match.name}")

    def _caller(self) -> Caller:
        return Caller(platform=PLATFORM, command_id=f"{self._session}-{next(self._ids)}",
                      author=Author(id=self._user.id, display_name=self._user.display_name),
                      channel_id=self._user.id, is_dm=True, channel_name="terminal",
                      sent_at=time.time())

    def _message(self, text: str) -> InboundMessage:
        return self._caller().message(text, self._persona_id)

    def _say(self, text: str) -> None:
        self._out.write(f"* {text}\n")
        self._out.flush()


class ConsoleAdapter:
    """The terminal as a :class:`core.app.Platform`: prints replies, reads a chat."""

    name = PLATFORM
    roles = None
    """The terminal's person has no roles, and that is known."""

    def __init__(self, personas: PersonaSource, persona_id: str, user: ConsoleUser,
                 stdin: TextIO, out: TextIO, *, prompt: bool,
                 attachments: AttachmentSettings | None = None) -> None:
        self.sink = ConsoleSink(out, personas)
        self._attachments = attachments
        self._personas = personas
        self._persona_id = persona_id
        self._user = user
        self._stdin = stdin
        self._out = out
        self._prompt = prompt
        self._chat: ConsoleChat | None = None

    def attach(self, dispatcher: Dispatcher, commands: CommandSet) -> None:
        """Chat through ``dispatcher``; ``/commands`` are ``commands``."""
        self._chat = ConsoleChat(dispatcher, commands, self._personas, self._persona_id,
                                 self._user, self._stdin, self._out, prompt=self._prompt,
                                 attachments=self._attachments)

    async def run(self) -> None:
        """Chat until ``/quit`` or the end of input."""
        assert self._chat is not None, "attach the adapter to a dispatcher first"
        await self._chat.run()

    def stop_intake(self) -> None:
        """Nothing to stop: the chat has ended when the runtime closes."""

    async def close(self) -> None:
        """Nothing to let go of."""


class _LineReader:
    """stdin lines delivered to the loop by a daemon thread, so a blocked read never
    holds up the loop or the exit."""

    def __init__(self, stdin: TextIO) -> None:
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._wanted = threading.Semaphore(0)
        thread = threading.Thread(target=self._read, args=(stdin,), daemon=True,
                                  name="console-stdin")
        thread.start()

    def _read(self, stdin: TextIO) -> None:
        while True:
            self._wanted.acquire()
            line = stdin.readline()
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line or None)
            if not line:
                return

    async def next(self) -> str | None:
        """The next line (with its newline), or None at the end of input."""
        self._wanted.release()
        return await self._lines.get()


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise FetchRefused(f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise FetchRefused("over the size cap")
    return data


def persona_choices(personas: Sequence[str]) -> str:
    """The known persona ids, for messages."""
    return ", ".join(sorted(personas)) or "(none)"
