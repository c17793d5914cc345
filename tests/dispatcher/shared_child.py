"""A personae process sharing one PostgreSQL log with others, driven by a test.

    python -m tests.dispatcher.shared_child URL PERSONAS_JSON

PERSONAS_JSON is a list of ``{"id": ..., "extra": <persona YAML appended>}`` (offline
provider). The child opens the log with the bot's projections, builds a dispatcher with
a recording adapter (platform ``test``) and a conversation cache of its own, prints
``ready``, then runs one JSON command per line of standard input and prints one JSON
line per command:

- ``{"op": "ingest", "messages": [...], "at": T}``: waits until ``time.time() >= T``
  (when given: several children then start together), ingests every message
  concurrently, waits for the replies; prints each one's ``triggered``, ``rejected`` and
  ``duplicate``; ``delivered``: the replies this process's adapter was given, and
  ``jobs``: the reply jobs this process ran (each starts with a typing hint), and when
  the ingests started and when all were recorded (``started``, ``admitted``).
- ``{"op": "append", "stream": S, "message_id": M, "text": X}``: a MessageReceived
  appended through the child's conversation cache.
- ``{"op": "recent", "stream": S}``: the event ids the cache gives for S (10 turns).
- ``{"op": "quit"}``.

A message is ``{"author", "channel", "guild" (null: a DM), "id", "text"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import eventstore
from core.app import build_dispatcher
from core.context.history import ConversationHistory
from core.dispatcher.messages import ReplyTarget
from core.dispatcher.projection import projections
from core.events import MessageReceived
from core.personas.registry import PersonaRegistry
from tests.dispatcher.conftest import RecordingSink, gateway_for, human, load_persona


class CountingSink(RecordingSink):
    """A recording adapter that also counts the reply jobs started (typing hints)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[str] = []

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        self.jobs.append(f"{persona_id}:{target.message_id}")


def _message(spec: dict[str, Any]):
    dm = spec.get("guild") is None
    return human(spec["author"], spec["text"], channel=spec["channel"], guild=spec.get("guild"),
                 message_id=spec["id"], is_dm=dm)


async def main(url: str, personas_json: str) -> None:
    personas = [load_persona(p["id"], provider="offline", extra=p.get("extra", ""))
                for p in json.loads(personas_json)]
    store = await eventstore.open_store(url, projections=projections())
    gateway = gateway_for(None)
    sink = CountingSink()
    dispatcher = build_dispatcher(store, PersonaRegistry(personas), gateway, {"test": sink})
    await dispatcher.start(schedule_resets=False)
    history = ConversationHistory(store)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            command = json.loads(line)
            op = command["op"]
            if op == "quit":
                break
            if op == "ingest":
                if command.get("at"):
                    await asyncio.sleep(max(0.0, command["at"] - time.time()))
                before, jobs = len(sink.replies), len(sink.jobs)
                started = time.time()
                results = await asyncio.gather(*(dispatcher.ingest(_message(m))
                                                 for m in command["messages"]))
                admitted = time.time()
                for result in results:
                    await asyncio.gather(*result.replies)
                await dispatcher.wait_idle()
                print(json.dumps({
                    "results": [{"triggered": list(r.triggered),
                                 "rejected": [[p, str(why)] for p, why in r.rejected],
                                 "duplicate": r.duplicate} for r in results],
                    "delivered": [[r.persona_id, r.target.message_id]
                                  for r in sink.replies[before:]],
                    "jobs": sink.jobs[jobs:], "started": started, "admitted": admitted}),
                      flush=True)
            elif op == "append":
                event = MessageReceived(platform="test", message_id=command["message_id"],
                                        channel_id="c", author_id="u", author_name="U",
                                        text=command["text"])
                await history.append(command["stream"],
                                     event.new_event(f"msg:test:{command['message_id']}"))
                print(json.dumps({"ok": True}), flush=True)
            elif op == "recent":
                events = await history.recent(command["stream"], 10)
                print(json.dumps({"ids": [e.event_id for e in events]}), flush=True)
    finally:
        await dispatcher.shutdown(5)
        await gateway.aclose()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
