"""The dispatcher's parts on their own: admission with its collaborators (and a turn
policy that replaces the default), and the application wiring over the in-memory
backend with the terminal as its platform."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

import pytest

from core.adapters.console import ConsoleAdapter, ConsoleUser
from core.app import Runtime
from core.config import AdminSettings, load_config
from core.credentials import Secrets
from core.dispatcher.admission import Admission
from core.dispatcher.messages import InboundMessage
from core.dispatcher.triggers import TriggerMatch
from core.dispatcher.workqueue import WorkQueue
from core.events import PersonaTriggered, TriggerRejected
from core.limits.quotas import QuotaLedger
from core.personas.registry import PersonaRegistry
from core.personas.versions import VersionRecorder
from eventstore import MemoryLog, ThreadedStore, open_store

from .conftest import human, load_persona, persona_yaml


class FirstOnly:
    """A turn policy: only the strongest trigger answers."""

    async def turns(self, message: InboundMessage,
                    matches: Sequence[TriggerMatch]) -> Sequence[TriggerMatch]:
        return matches[:1]


async def _admission(*, queue_size: int = 10, policy=None) -> tuple[Admission, ThreadedStore]:
    store = ThreadedStore(MemoryLog())
    ada = load_persona("ada", extra="triggers: {keywords: [hello]}\n")
    bob = load_persona("bob", extra="triggers: {keywords: [hello]}\n"
                                    "permissions: {deny_users: ['222222222222222222']}\n")
    admission = Admission(personas=PersonaRegistry([ada, bob]),
                          queue=WorkQueue(max_pending=queue_size, max_concurrent=2),
                          ledger=QuotaLedger(store), versions=VersionRecorder(store),
                          admins=AdminSettings(), clock=time.time, policy=policy)
    return admission, store


async def test_admission_decides_each_match_with_the_collaborators_it_is_given() -> None:
    admission, store = await _admission(queue_size=1)
    try:
        message = human("222222222222222222", "@ada @bob hello")
        matches = await admission.matches(message)
        assert [(m.persona_id, m.reason) for m in matches] == [("ada", "mention"),
                                                              ("bob", "mention")]
        ada, bob = await admission.decide(message, matches, "msg:test:1")
        assert isinstance(ada.event, PersonaTriggered) and ada.event.reason == "mention"
        assert isinstance(bob.event, TriggerRejected)
        assert bob.event.reason == "permission:user_denied"
        # the queue's one slot went to ada: the next decision is "busy"
        (again,) = await admission.decide(human("u1", "@ada hi"), matches[:1], "msg:test:2")
        assert isinstance(again.event, TriggerRejected) and again.event.reason == "busy"
        admission.undo([ada])
        (freed,) = await admission.decide(human("u1", "@ada hi"), matches[:1], "msg:test:3")
        assert isinstance(freed.event, PersonaTriggered)
    finally:
        await store.close()


async def test_a_turn_policy_replaces_who_takes_a_turn() -> None:
    admission, store = await _admission(policy=FirstOnly())
    try:
        assert [m.persona_id for m in await admission.matches(human("u1", "@ada @bob hello"))] == [
            "ada"]
    finally:
        await store.close()


@pytest.fixture
def memory_config(tmp_path):
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(persona_yaml("ada", provider="offline"))
    (tmp_path / "config.yaml").write_text("database: {url: 'memory://'}\n"
                                          "providers: {offline: {kind: offline}}\n")
    return load_config(tmp_path / "config.yaml")


async def test_the_runtime_runs_a_platform_over_the_backend_the_url_names(memory_config) -> None:
    assert memory_config.database.url == "memory://" and memory_config.database.path is None
    registry = PersonaRegistry([load_persona("ada", provider="offline")])
    out = io.StringIO()
    console = ConsoleAdapter(registry, "ada", ConsoleUser(id="grace", display_name="Grace"),
                             io.StringIO("hello there\n/personas\n/quit\n"), out, prompt=False)
    runtime = await Runtime.open(memory_config, Secrets({}), registry=registry,
                                 platforms=[lambda store, personas: console])
    try:
        assert isinstance(runtime.store, ThreadedStore)
        assert runtime.store.location == "memory://"
        await runtime.dispatcher.start(schedule_resets=False)
        await console.run()
        events = await runtime.store.read_all()
    finally:
        await runtime.close()
    assert "Ada: " in out.getvalue() and "You said: hello there" in out.getvalue()
    assert "* Ada (ada)" in out.getvalue()  # /personas, the shared command, in the terminal
    assert [e.type for e in events if e.stream_id == "conv:console:grace:ada"] == [
        "MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered"]


async def test_a_database_url_and_a_path_name_the_same_sqlite_log(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("database: {url: 'sqlite:///data/x.db'}\n")
    (tmp_path / "b.yaml").write_text("database: {path: data/x.db}\n")
    by_url, by_path = load_config(tmp_path / "a.yaml"), load_config(tmp_path / "b.yaml")
    assert by_url.database == by_path.database
    assert by_url.database.path == tmp_path / "data" / "x.db"
    store = await open_store(by_url.database.url)
    try:
        await store.append("s", [PersonaTriggered(
            platform="p", message_id="m", persona_id="ada", persona_version="v",
            reason="mention", channel_id="c", author_id="u",
            source_event_id="msg:p:m").new_event("e")])
    finally:
        await store.close()
    assert (tmp_path / "data" / "x.db").exists()
