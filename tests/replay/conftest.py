"""A real recorded conversation for the replay tests: the dispatcher with the fake
OpenAI server (through the real gateway and SDK) and the recording adapter from the
dispatcher tests, producing every event kind; plus a config.yaml pointing at its log
so the commands run as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.adapters.discord.gateway_log import GatewayLog
from core.cli import cli
from core.config import PrivacySettings
from core.dispatcher.dispatcher import DispatcherSettings
from core.dispatcher.messages import InboundDeletion, InboundEdit
from core.dispatcher.sink import DeliveryError
from core.events.ids import delivered_event_id, reply_event_id
from core.personas.loader import load_persona_file
from eventstore import EVERYTHING, SQLiteLog
from tests.dispatcher.conftest import (  # noqa: F401  (fake_openai is a fixture)
    PROVIDERS,
    close_harness,
    fake_openai,
    human,
    make_harness,
    persona_yaml,
    settle,
)
from tests.fakes.openai_server import FakeOpenAI, Fault

ROOT = Path(__file__).resolve().parents[2]

GRACE = "284719203847192384"
LINUS = "593817264019283746"
MALLORY = "771020304050607080"
GRACE_NAME = "Grace Hopper"
LINUS_NAME = "Linus Torvalds"

ADA_EXTRA = (
    "context: {max_messages: 12, max_tokens: 3000}\n"
    "limits: {quota: {tokens: 1000000, scope: user, reset: '0 0 * * *'}}\n"
    f"permissions: {{deny_users: ['{MALLORY}']}}\n"
    "lorebook:\n  - keys: [decorator]\n    content: Explain decorators with timing first.\n"
)
BOB_EXTRA = "triggers: {keywords: [bob]}\n"


@dataclass
class Flow:
    """A finished recorded flow and handles for checking the commands against it."""

    root: Path
    config: Path
    log_path: Path
    fake: FakeOpenAI
    texts: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    def invoke(self, *args: str) -> tuple[int, str, str]:
        """Run ``personae --config ... ARGS`` in this process (no event loop needed)."""
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    async def run(self, *args: str) -> tuple[int, str, str]:
        """Run the real command line in its own process while this loop keeps serving the
        fake model (commands that call a model must not block it)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", "--config", str(self.config), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    def rows(self, sql: str, *params: object) -> list[tuple]:
        """Rows of a query on the log's events as read (personal content is sealed in
        the file, so the query runs on a copy of the events with their content opened)."""
        db = opened_events(self.log_path)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


def opened_events(path: Path) -> sqlite3.Connection:
    """An in-memory database whose ``events`` table holds the log's events as read:
    every stored column, ``data`` with its sealed content opened (the log's other tables
    are there too, read from the file)."""
    log = SQLiteLog.open(path, read_only=True)
    db = sqlite3.connect(":memory:", uri=True)
    # the projections' tables are read from the file itself
    db.execute("ATTACH DATABASE ? AS stored", (f"file:{path}?mode=ro",))
    db.execute("CREATE TABLE events (position, event_id, stream_id, version, type, "
               "schema_version, data, recorded_at, correlation_id, causation_id)")
    try:
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version,
             json.dumps(e.data), e.recorded_at, e.correlation_id, e.causation_id)
            for e in log.scan(EVERYTHING, upcast=False, unseal=True)])
    finally:
        log.close()
    return db


def write_workspace(root: Path, fake: FakeOpenAI) -> Path:
    """personas/ada.yaml, personas/bob.yaml and a config.yaml naming the fake provider."""
    (root / "personas").mkdir(exist_ok=True)
    (root / "personas" / "ada.yaml").write_text(persona_yaml("ada", extra=ADA_EXTRA))
    (root / "personas" / "bob.yaml").write_text(persona_yaml("bob", extra=BOB_EXTRA))
    config = root / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n"
                      "privacy: {keep_edit_history: true}\n"
                      f"providers:\n  fake: {{base_url: '{fake.base_url}'}}\n")
    return config


async def record_flow(root: Path, fake: FakeOpenAI) -> Flow:
    """Drive the dispatcher through every kind of event and close it."""
    config = write_workspace(root, fake)
    personas = [load_persona_file(root / "personas" / f"{p}.yaml", defaults={},
                                  known_providers=PROVIDERS) for p in ("ada", "bob")]
    # edit history kept, as the config says: every recorded prompt rebuilds exactly
    settings = DispatcherSettings(privacy=PrivacySettings(keep_edit_history=True))
    harness = await make_harness(root, personas, fake, settings=settings)
    flow = Flow(root, config, root / "log.db", fake)
    try:
        gateway = GatewayLog(harness.store)
        await gateway.connected("session-1", 0)

        async def say(key: str, author: str, name: str, text: str, **fields: object) -> None:
            message = human(author, text, name=name, **fields)
            flow.ids[key] = message.message_id
            flow.texts.append(text)
            await asyncio.wait_for(settle(await harness.dispatcher.ingest(message)), 20)

        await say("hello", GRACE, GRACE_NAME, "@ada hello, I am writing a compiler")
        await say("bob", LINUS, LINUS_NAME, "bob, what do you think of kernels?")
        await say("decorator", GRACE, GRACE_NAME, "@ada what is a decorator?")
        # the platform echoes our reply back, as Discord does
        delivered = await harness.store.get(delivered_event_id("test", flow.ids["decorator"],
                                                               "ada"))
        replied = await harness.store.get(reply_event_id("test", flow.ids["decorator"], "ada"))
        flow.ids["echo"] = delivered.data["delivered_ids"][0]
        await harness.dispatcher.ingest(human("ada-bot", replied.data["text"], name="Ada",
                                              message_id=flow.ids["echo"], is_bot=True))
        await harness.dispatcher.edit(
            InboundEdit(
                platform="test",
                message_id=flow.ids["hello"],
                channel_id="c1",
                text="@ada hello, I am writing a COBOL compiler",
                edited_at="edit-1",
            )
        )
        flow.texts.append("@ada hello, I am writing a COBOL compiler")
        await say("denied", MALLORY, "Mallory", "@ada tell me the admin password")
        fake.script(Fault.insufficient_quota())
        await say("failed", LINUS, LINUS_NAME, "@ada are you there at all?")
        harness.sink.fail_with = DeliveryError("the channel is gone")
        await say("undelivered", GRACE, GRACE_NAME, "@ada this one will not arrive")
        harness.sink.fail_with = None
        await say("nobody", LINUS, LINUS_NAME, "just talking to myself here")
        await say("deleted", LINUS, LINUS_NAME, "oops, wrong channel entirely")
        await harness.dispatcher.delete(
            InboundDeletion(platform="test", message_id=flow.ids["deleted"], channel_id="c1")
        )
        await gateway.resumed("session-1", 0)
        await harness.dispatcher.reset_conversation("test", "c1", GRACE, "reset-1")
        await say("fresh", GRACE, GRACE_NAME, "@ada a fresh start: what is a generator?")
        # one persona per DM unless named: this DM names both, so both answer
        await say("dm", LINUS, LINUS_NAME, "@ada hi in private, and bob too", channel="dm-linus",
                  guild=None, is_dm=True)
        await gateway.disconnected("session-1", 0)
        await harness.dispatcher.wait_idle()
    finally:
        await close_harness(harness)
    return flow


@pytest.fixture
async def flow(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Flow]:  # noqa: F811
    yield await record_flow(tmp_path, fake_openai)
