"""The chaos harness: the real bot process against the Discord emulator and the fake model.

The emulator and the fake OpenAI server run in this process; the bot is ``personae
run`` in a subprocess, pointed at them by its config (``discord.api_base_url``,
the provider's ``base_url``) with the token in its environment. Conversations are
driven as people would (a message, wait for the answer, think, the next one), faults
are injected on a schedule, and the verdict comes from the emulator's record::

    async with ChaosRig.open(folder, conversations=200) as rig:
        await rig.bot.start()
        await rig.until_connected()
        await rig.drive(messages_each=10, answer_timeout_s=30, think_s=1.0)
        await rig.settle(30)
        verdict = rig.verdict()
        assert verdict.lost == [] and verdict.duplicated == []

Each message is ``ada, k<conversation>x<n> ...``: the keyword triggers the persona and
the fake model's deterministic reply ends with the text it answered, so every bot
message can be tied to the message it answers (replies also carry a
``message_reference`` when the persona posts without a webhook).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import itertools
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.discord import Channel, DiscordEmulator, Message, User
from tests.fakes.openai_server import FakeOpenAI, text_of

TOKEN_ENV = "CHAOS_DISCORD_TOKEN"
FAILURE_NOTICE = "Ada cannot answer right now (chaos failure notice)."
BUSY_NOTICE = "Ada is busy (chaos busy notice)."
NOTICES = frozenset({FAILURE_NOTICE, BUSY_NOTICE})
DISCORD_CONTENT_LIMIT = 2000
CHANNELS_PER_GUILD = 250
"""Discord allows 500 channels per guild; stay well inside it."""
_KEY = re.compile(r"\bk(\d+)x(\d+)\b")


@dataclass(frozen=True, slots=True)
class BotSettings:
    """What the bot process is started with (config.yaml and the persona file)."""

    webhook: bool = False
    """Post as a webhook (the normal path) or as plain replies, which name the message
    they answer: exact attribution even for failure notices."""
    reply_deadline_s: float = 20.0
    provider_timeout_s: float = 5.0
    max_concurrency: int = 256
    max_concurrent_replies: int = 256
    catch_up_window_s: float = 600.0
    log_level: str = "info"
    stream_edits: bool = False
    """Show each reply as it arrives (a preview message edited as the model streams)."""
    database: str = "log.db"
    """The event log's path (relative to the bot's folder, or absolute)."""
    metrics_port: int | None = None
    """Serve /metrics, /healthz and /readyz on this port."""
    database_url: str | None = None
    """The log's URL instead of ``database`` (a PostgreSQL schema shared by processes)."""
    context_cache: int | None = None
    """``limits.context_cache`` (None: the default)."""


def write_bot_folder(folder: Path, emu: DiscordEmulator, fake: FakeOpenAI,
                     settings: BotSettings) -> Path:
    """A config.yaml and one persona, as a user would write them; returns the config."""
    (folder / "personas").mkdir(parents=True, exist_ok=True)
    (folder / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\navatar_url: https://example.org/ada.png\n"
        "model: {provider: fake, name: fake-model, max_tokens: 3000}\n"
        "prompt:\n  system: You are Ada.\n"
        "context: {max_messages: 8}\n"
        "triggers: {mention: true, keywords: [ada]}\n"
        f"limits: {{reply_deadline: {settings.reply_deadline_s:g}s}}\n"
        f"delivery: {{webhook: {str(settings.webhook).lower()}, "
        f"stream_edits: {str(settings.stream_edits).lower()}, "
        f"failure_notice: '{FAILURE_NOTICE}', busy_notice: '{BUSY_NOTICE}'}}\n")
    config = folder / "config.yaml"
    config.write_text(
        (f"database: {{url: '{settings.database_url}'}}\n" if settings.database_url else
         f"database: {{path: '{settings.database}', synchronous: normal}}\n")
        +
        "personas: {dir: personas}\n"
        f"discord: {{api_base_url: '{emu.api_base_url}', token_env: {TOKEN_ENV}, "
        f"catch_up_window: {settings.catch_up_window_s:g}s}}\n"
        f"providers:\n  fake: {{base_url: '{fake.base_url}', "
        f"timeout: {settings.provider_timeout_s:g}s, "
        f"max_concurrency: {settings.max_concurrency}}}\n"
        f"limits: {{shutdown_deadline: 5s, max_concurrent_replies: "
        f"{settings.max_concurrent_replies}, recovery_window: 10m"
        + (f", context_cache: {settings.context_cache}" if settings.context_cache is not None
           else "") + "}\n"
        f"logging: {{level: {settings.log_level}}}\n"
        + (f"metrics: {{port: {settings.metrics_port}}}\n" if settings.metrics_port else ""))
    return config


class BotProcess:
    """``personae run`` as a child process; its stderr goes to ``bot-<n>.log``."""

    def __init__(self, config: Path, token: str, args: Sequence[str] = ()) -> None:
        self.config = config
        self._token = token
        self._args = tuple(args)
        """More arguments of ``personae run`` (``--shards 0 --shard-count 2``)."""
        self.process: asyncio.subprocess.Process | None = None
        self.log_files: list[Path] = []
        self.exit_codes: list[int] = []

    @property
    def pid(self) -> int:
        assert self.process is not None, "the bot is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the bot (another start after a stop or a kill is a restart)."""
        assert not self.running
        log_file = self.config.parent / f"bot-{'-'.join(self._args[1:2])}{len(self.log_files)}.log"
        self.log_files.append(log_file)
        env = {**os.environ, TOKEN_ENV: self._token}
        with log_file.open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                *personae_command(self.config), "run", *self._args, env=env,
                cwd=self.config.parent,
                stdout=sink, stderr=sink, preexec_fn=_die_with_parent)

    async def kill(self) -> None:
        """kill -9: no shutdown, no flush, whatever was in flight is cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.exit_codes.append(await self.process.wait())

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the clean exit; returns the exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        self.exit_codes.append(code)
        return code

    def logs(self) -> str:
        return "\n".join(f.read_text(errors="replace") for f in self.log_files if f.exists())

    def unhandled_errors(self) -> list[str]:
        """Log lines that show an unhandled exception or an error the bot logged."""
        return [line for line in self.logs().splitlines()
                if "Traceback" in line or " ERROR " in line or "CRITICAL" in line
                or line.startswith("error:")]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the harness dies (no orphaned bots)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def personae_command(config: Path) -> list[str]:
    return [sys.executable, "-c", "from core.cli import main; main()", "--config", str(config)]


async def personae_db_check(config: Path) -> tuple[int, str]:
    """``personae db check`` on the bot's log: (exit status, output)."""
    process = await asyncio.create_subprocess_exec(
        *personae_command(config), "db", "check", cwd=config.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Conversation:
    """One person talking to Ada in a channel of their own."""

    index: int
    user: User
    channel: Channel


def build_world(emu: DiscordEmulator, conversations: int, shards: int = 1
                ) -> list[Conversation]:
    """A guild per 250 channels; each conversation has its own user and channel. With
    ``shards``, the guilds take the shards in turn (guild 0 on shard 0, 1 on 1 ...)."""
    found: list[Conversation] = []
    guild = None
    # several shards: at least two guilds each, so every shard has conversations
    per_guild = CHANNELS_PER_GUILD if shards == 1 else max(1, min(
        CHANNELS_PER_GUILD, conversations // (2 * shards)))
    for index in range(conversations):
        if index % per_guild == 0:
            number = index // per_guild
            guild = emu.add_guild(f"guild-{number}")
            while (guild.id >> 22) % shards != number % shards:
                guild = emu.add_guild(f"guild-{number}")
        assert guild is not None
        user = emu.add_user(f"user{index}")
        emu.add_member(guild, user)
        found.append(Conversation(index, user, emu.add_text_channel(guild, f"chat-{index}")))
    return found


@dataclass(slots=True)
class Sent:
    """A message a person sent, and what the bot posted for it.

    ``answers`` are the first messages of each answer (a reply or a notice): exactly
    one when all went well. ``parts`` are the further messages of a reply split at
    Discord's 2,000 characters."""

    message: Message
    conversation: int
    answers: list[Message] = field(default_factory=list)
    parts: list[Message] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def replies(self) -> list[Message]:
        return [m for m in self.answers if _body(m) not in NOTICES]

    @property
    def notices(self) -> list[Message]:
        return [m for m in self.answers if _body(m) in NOTICES]

    @property
    def text(self) -> str:
        """The whole answer as posted (every part, persona headers removed)."""
        return "".join(_body(m) for m in [*self.answers, *self.parts])


def _body(message: Message) -> str:
    """The content without the ``**Name**`` header plain bot replies start with."""
    content = message.content
    if content.startswith("**") and "**\n" in content:
        return content.split("**\n", 1)[1]
    return content


class AnswerWatcher:
    """Ties every message the bot posts to the message it answers.

    It reads the emulator's message store in insertion order (new messages only), so a
    check costs nothing when nothing happened. Plain replies name the message they
    answer (``message_reference``, on the first part only: later parts continue the
    channel's last answer); webhook messages are tied by the key the fake model echoes
    (``k<c>x<n>``). A message it cannot tie to a sent message is kept in
    ``unattributed``.
    """

    def __init__(self, emu: DiscordEmulator, *, by_reference: bool, poll_s: float = 0.002
                 ) -> None:
        self._emu = emu
        self._by_reference = by_reference
        self._poll_s = poll_s
        self._seen = 0
        self.by_id: dict[int, Sent] = {}
        self.by_key: dict[str, Sent] = {}
        self._last_in_channel: dict[int, Sent] = {}
        self.unattributed: list[Message] = []
        self._task: asyncio.Task[None] | None = None

    def track(self, sent: Sent) -> None:
        self.by_id[sent.message.id] = sent
        key = _KEY.search(sent.message.content)
        if key:
            self.by_key[key.group(0)] = sent

    def is_ours(self, message: Message) -> bool:
        return message.author.id == self._emu.bot_user.id or (
            message.webhook_id is not None and message.interaction_id is None)

    def scan(self) -> None:
        store = self._emu.world.messages
        if len(store) == self._seen:
            return
        fresh = list(itertools.islice(store.values(), self._seen, None))
        self._seen += len(fresh)
        for message in fresh:
            if self.is_ours(message):
                self._attribute(message)

    def _attribute(self, message: Message) -> None:
        if self._by_reference:
            sent = self.by_id.get(message.reference_id) if message.reference_id else None
            if sent is None and message.reference_id is None:
                last = self._last_in_channel.get(message.channel_id)
                if last is not None and _body(message) not in NOTICES:
                    last.parts.append(message)
                    return
        else:
            keys = _KEY.findall(message.content)
            sent = self.by_key.get(f"k{keys[0][0]}x{keys[0][1]}") if keys else None
        if sent is None:
            self.unattributed.append(message)
            return
        sent.answers.append(message)
        self._last_in_channel[message.channel_id] = sent
        sent.answered.set()

    async def _run(self) -> None:
        while True:
            self.scan()
            await asyncio.sleep(self._poll_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.scan()


@dataclass(frozen=True, slots=True)
class Verdict:
    """Exactly once, from the emulator's record."""

    sent: int
    replied: int
    noticed: int
    lost: list[int]
    duplicated: list[int]
    unattributed: list[int]
    pinged: list[int]

    @property
    def exactly_once(self) -> bool:
        return not (self.lost or self.duplicated or self.unattributed)


def verdict(emu: DiscordEmulator, sent: Sequence[Sent], watcher: AnswerWatcher) -> Verdict:
    """Every message answered exactly once: one reply, or one failure notice; nobody
    pinged but the person answered."""
    watcher.scan()
    lost = [s.message.id for s in sent if not s.answers]
    duplicated = [s.message.id for s in sent if len(s.answers) > 1]
    pinged = [m.id for s in sent for m in [*s.answers, *s.parts]
              if not _pings_at_most_author(emu, m, s.message.author.id)]
    return Verdict(
        sent=len(sent),
        replied=sum(1 for s in sent if len(s.answers) == 1 and s.replies),
        noticed=sum(1 for s in sent if len(s.answers) == 1 and s.notices),
        lost=lost, duplicated=duplicated,
        unattributed=[m.id for m in watcher.unattributed], pinged=pinged)


def _pings_at_most_author(emu: DiscordEmulator, message: Message, author_id: int) -> bool:
    pings = emu.pings(message)
    return (not pings.everyone and not pings.role_ids
            and set(pings.user_ids) | set(pings.notified_user_ids) <= {author_id})


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message and its answer, timed by the emulator's own clock."""

    conversation: int
    reply_s: float | None
    """From the message to the first answer stored (None: no answer in time)."""


class ChaosRig:
    """Emulator + fake model in this process, the bot as a child (see the module doc)."""

    def __init__(self, emu: DiscordEmulator, fake: FakeOpenAI, folder: Path,
                 conversations: list[Conversation], settings: BotSettings,
                 processes: int = 1) -> None:
        self.emu = emu
        self.fake = fake
        self.folder = folder
        self.conversations = conversations
        self.settings = settings
        self.config = write_bot_folder(folder, emu, fake, settings)
        self.bots = [BotProcess(self.config, emu.token) if processes == 1 else
                     BotProcess(self.config, emu.token,
                                ("--shards", str(n), "--shard-count", str(processes)))
                     for n in range(processes)]
        """One process, or one per shard (over a PostgreSQL log)."""
        self.bot = self.bots[0]
        self.watcher = AnswerWatcher(emu, by_reference=not settings.webhook)
        self.sent: list[Sent] = []
        self._counter = itertools.count()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, folder: Path, *, conversations: int, latency_s: float = 0.0,
                   settings: BotSettings = BotSettings(), processes: int = 1
                   ) -> AsyncIterator[ChaosRig]:
        async with DiscordEmulator(bot_name="Personae", max_concurrency=16) as emu, \
                FakeOpenAI(latency_s=latency_s) as fake:
            rig = cls(emu, fake, folder, build_world(emu, conversations, processes),
                      settings, processes)
            rig.watcher.start()
            try:
                yield rig
            finally:
                await rig.watcher.stop()
                for bot in rig.bots:
                    if bot.running:
                        await bot.stop()

    async def until_connected(self, timeout_s: float = 30.0) -> None:
        """Until the bot (each of its shards) is on the gateway with its commands
        registered."""
        if len(self.bots) > 1:
            await self.emu.wait_until(lambda: all(
                self.emu.shard_connected(n) for n in range(len(self.bots))), timeout=timeout_s)
        await self.emu.wait_until(lambda: self.emu.hub.connected, timeout=timeout_s)
        await self.emu.wait_for_command("ask", timeout=timeout_s)

    async def say(self, conversation: Conversation, extra: str = " how are you?") -> Sent:
        """The person says something that triggers Ada: a keyword, a key naming the
        message, then ``extra`` (past 2,000 characters, a forged dispatch)."""
        key = f"k{conversation.index}x{next(self._counter)}"
        content = f"ada, {key}{extra}"
        if len(content) > DISCORD_CONTENT_LIMIT:
            message = await forge_message(self.emu, conversation.user, conversation.channel,
                                          content)
        else:
            message = await self.emu.user_says(conversation.user, conversation.channel,
                                               content)
        sent = Sent(message, conversation.index)
        self.watcher.track(sent)
        self.sent.append(sent)
        return sent

    async def converse(self, conversation: Conversation, *, until: Callable[[], bool],
                       answer_timeout_s: float, think_s: float = 0.0,
                       on_exchange: Callable[[Exchange], None] | None = None) -> None:
        """Message, answer, think, next message, until ``until()`` is true."""
        while not until():
            sent = await self.say(conversation)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sent.answered.wait(), answer_timeout_s)
            if on_exchange is not None:
                first = sent.answers[0].created_at if sent.answers else None
                on_exchange(Exchange(conversation.index, None if first is None
                                     else first - sent.message.created_at))
            if think_s:
                await asyncio.sleep(think_s)

    async def drive(self, *, messages_each: int, answer_timeout_s: float,
                    think_s: float = 0.0, until: Callable[[], bool] | None = None,
                    most_each: int | None = None) -> None:
        """Every conversation sends ``messages_each`` messages, one after each answer, then
        goes on until ``until()`` is true as well (at most ``most_each`` messages each)."""
        most = most_each or messages_each

        def enough(sent: int) -> bool:
            return sent >= most or (sent >= messages_each and (until is None or until()))

        async def one(conversation: Conversation) -> None:
            count = itertools.count()
            await self.converse(conversation, until=lambda: enough(next(count)),
                                answer_timeout_s=answer_timeout_s, think_s=think_s)

        await asyncio.gather(*(one(c) for c in self.conversations))

    async def drive_through(self, schedule: Sequence[tuple[float, Callable[[], Awaitable[None]]]],
                            *, messages_each: int, most_each: int) -> list[str]:
        """Run ``schedule``'s faults while the conversations go on until every fault has
        met traffic, however fast the bot is; returns what was injected."""
        scheduled = asyncio.Event()

        async def inject() -> list[str]:
            try:
                return await run_schedule(schedule)
            finally:
                scheduled.set()

        injected, _ = await asyncio.gather(
            inject(),
            self.drive(messages_each=messages_each, answer_timeout_s=30, think_s=1.0,
                       most_each=most_each,
                       until=lambda: scheduled.is_set() and not self.faults_pending()))
        return injected

    async def settle(self, timeout_s: float, quiet_s: float = 1.0) -> None:
        """Until every message sent has an answer and nothing more has been posted for
        ``quiet_s`` (the last parts of long replies, a late duplicate), or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in self.sent)),
                                   timeout_s)
        store = self.emu.world.messages
        while time.monotonic() < deadline:
            seen = len(store)
            await asyncio.sleep(quiet_s)
            if len(store) == seen:
                break

    def model_answer(self, sent: Sent) -> str:
        """The text the fake model answered ``sent`` with (a retry asks the same prompt,
        so every request for it has the same answer)."""
        key = _KEY.search(sent.message.content)
        assert key is not None, "not a message of say()"

        def answered_key(messages: Sequence[dict[str, object]]) -> str | None:
            last = next((text_of(m.get("content")) for m in reversed(messages)
                         if m.get("role") == "user"), "")
            found = _KEY.search(last)
            return found.group(0) if found else None

        answers = {self.fake.answer_text(r) for r in self.fake.requests
                   if answered_key(r.messages) == key.group(0)}
        assert len(answers) == 1, f"{len(answers)} different answers to {key.group(0)}"
        return answers.pop()

    def faults_pending(self) -> int:
        """Scripted faults the emulator and the fake model have not served yet."""
        return self.emu.pending_rest_faults() + self.fake.pending_faults()

    def verdict(self) -> Verdict:
        return verdict(self.emu, self.sent, self.watcher)

    def connected_fraction(self, since: float, until: float) -> float:
        """Share of [since, until] (monotonic) with a live, identified or resumed gateway
        connection, from the emulator's connection record."""
        return connected_fraction(self.emu, since, until)


def reconnect_gaps_s(emu: DiscordEmulator) -> list[float]:
    """For each connection after the first: seconds from the previous one closing to
    this one being opened (what one reconnect costs)."""
    records = sorted(emu.gateway_connections, key=lambda c: c.opened_at)
    return [max(0.0, later.opened_at - (earlier.closed_at or later.opened_at))
            for earlier, later in itertools.pairwise(records)]


def connected_fraction(emu: DiscordEmulator, since: float, until: float) -> float:
    spans = sorted((max(c.opened_at, since), min(c.closed_at or until, until))
                   for c in emu.gateway_connections
                   if c.start == "identify" or c.resumed)
    covered = 0.0
    reach = since
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            covered += end - start
            reach = end
    return covered / (until - since) if until > since else 1.0


async def run_schedule(steps: Sequence[tuple[float, Callable[[], Awaitable[None]]]],
                       *, stop: asyncio.Event | None = None) -> list[str]:
    """Run each (delay, action) in order, waiting ``delay`` seconds before each."""
    done: list[str] = []
    for delay, action in steps:
        if stop is not None and stop.is_set():
            break
        await asyncio.sleep(delay)
        await action()
        done.append(getattr(action, "__name__", repr(action)))
    return done


SEND_ROUTE = "POST /channels/{channel_id}/messages"
TYPING_ROUTE = "POST /channels/{channel_id}/typing"
WEBHOOK_ROUTE = "POST /webhooks/{webhook_id}/{token}"


def fault_schedule(rig: ChaosRig, *, every_s: float, model_storm: int = 4,
                   model_outage: int = 0) -> list[tuple[float, Callable[[], Awaitable[None]]]]:
    """Every fault the issue names, one every ``every_s`` seconds.

    Gateway: resumable closes (4000, 4008, 1001), op 7, op 9 (resumable), dispatches
    replayed after RESUME. REST: 429 per route and global (with ``Via``), 502. Model:
    a 429 storm with Retry-After, a 5xx burst, a stall past the provider timeout, and
    with ``model_outage`` that many 503s in a row (the breaker opens, replies fail past
    the deadline: one failure notice each).
    """
    from tests.fakes.openai_server import Fault

    emu, fake = rig.emu, rig.fake
    stall_s = rig.settings.provider_timeout_s + 1

    async def gateway_close_with_replay() -> None:
        emu.replay_on_next_resume(5)
        await emu.close_gateway(4000)

    async def gateway_close_4008() -> None:
        await emu.close_gateway(4008)

    async def gateway_close_1001() -> None:
        emu.replay_on_next_resume(3)
        await emu.close_gateway(1001)

    async def op7_reconnect() -> None:
        emu.replay_on_next_resume(2)
        await emu.send_reconnect()

    async def op9_resumable() -> None:
        await emu.invalidate_session(resumable=True)

    async def rest_429_send_route() -> None:
        emu.rate_limit(SEND_ROUTE, times=3, retry_after=0.3)

    async def rest_429_global() -> None:
        emu.rate_limit(None, times=2, retry_after=0.3, is_global=True)

    async def rest_429_typing_route() -> None:
        emu.rate_limit(TYPING_ROUTE, times=3, retry_after=0.2)

    async def rest_5xx() -> None:
        emu.server_error(SEND_ROUTE, times=1, status=502)

    async def model_429_storm() -> None:
        fake.script(*[Fault.rate_limit(retry_after=0.5) for _ in range(model_storm)])

    async def model_5xx_burst() -> None:
        fake.script(*[Fault.server_error(502) for _ in range(model_storm)])

    async def model_stall() -> None:
        fake.script(Fault.stall(stall_s))

    async def model_outage_past_deadline() -> None:
        fake.script(*[Fault.server_error(503) for _ in range(model_outage)])

    steps: list[Callable[[], Awaitable[None]]] = [
        gateway_close_with_replay, rest_429_send_route, model_429_storm, op7_reconnect,
        rest_429_global, model_5xx_burst, op9_resumable, rest_5xx, model_stall,
        gateway_close_4008, rest_429_typing_route, gateway_close_1001,
    ]
    if model_outage:
        steps.append(model_outage_past_deadline)
    return [(every_s, step) for step in steps]


async def forge_message(emu: DiscordEmulator, user: User, channel: Channel, content: str
                        ) -> Message:
    """A MESSAGE_CREATE Discord itself would never send: content past its 2,000 (4,000
    with Nitro) characters. The emulator refuses such a message from a user, as Discord
    does, so it is stored and dispatched as is, to see what the bot does with it."""
    from tests.fakes.discord import payloads

    placeholder = emu.world.create_message(channel, user, "forged")
    forged = dataclasses.replace(placeholder, content=content)
    emu.world.messages[forged.id] = forged
    emu.hub.dispatch("MESSAGE_CREATE", payloads.message(emu.world, forged, shape="dispatch"),
                     guild_id=forged.guild_id)
    await emu.hub.flush()
    return forged


def recorded_event_ids(config: Path, prefix: str) -> set[str]:
    """Event ids starting with ``prefix`` in the bot's log (read-only, bot stopped)."""
    with contextlib.closing(sqlite3.connect(f"file:{config.parent / 'log.db'}?mode=ro",
                                            uri=True)) as connection:
        rows = connection.execute("SELECT event_id FROM events WHERE event_id LIKE ?",
                                  (prefix + "%",)).fetchall()
    return {row[0] for row in rows}
