"""A dispatcher in a child process, for the kill -9 test.

    python -m tests.dispatcher.crash_child DB BASE_URL [greeting]

Ingests one message for persona ``ada`` (provider ``fake`` at BASE_URL) and then
waits forever: in the model call while the fake server holds the answer back, or
in delivery (its adapter never finishes delivering) when the server answers. With
``greeting``, Ada has a greeting, and the delivery that never finishes is the greeting's.
Prints ``ingested`` once the message and its trigger are committed, and
``delivering`` when the reply is recorded and handed to the adapter.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.app import build_dispatcher
from core.config import ProviderSettings
from core.credentials import Secrets
from core.dispatcher.messages import DeliveryReceipt, Notice, OutboundReply, ReplyTarget
from core.gateway.gateway import ModelGateway
from core.personas.registry import PersonaRegistry
from tests.dispatcher.conftest import human, load_persona, open_store


class _HangingSink:
    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        print("delivering", flush=True)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def notice(self, notice: Notice) -> None:
        return None

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        return None

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        return None


GREETING = "  greeting: Hello {user}, I am {persona}.\n"


async def _main(db: Path, base_url: str, greeting: bool) -> None:
    store = await open_store(db)
    gateway = ModelGateway({"fake": ProviderSettings("fake", base_url=base_url)}, Secrets({}))
    ada = load_persona("ada", extra=GREETING if greeting else "")
    dispatcher = build_dispatcher(store, PersonaRegistry([ada]), gateway,
                                  {"test": _HangingSink()})
    await dispatcher.start(schedule_resets=False)
    await dispatcher.ingest(human(text="@ada survive this", message_id="crash-1"))
    print("ingested", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["greeting"]))
