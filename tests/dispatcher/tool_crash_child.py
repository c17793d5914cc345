"""A dispatcher in a child process, killed -9 while a tool runs.

    python -m tests.dispatcher.tool_crash_child DB BASE_URL TOOL_URL

Ingests one message for persona ``ada`` whose HTTP tool ``slow`` calls TOOL_URL (a
server that never answers) and waits forever. Prints ``ingested`` once the message
and its trigger are committed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.app import build_dispatcher
from core.config import ProviderSettings
from core.credentials import Secrets
from core.gateway.gateway import ModelGateway
from core.personas.registry import PersonaRegistry
from tests.dispatcher.conftest import RecordingSink, human, load_persona, open_store


def slow_tool_persona(tool_url: str):  # type: ignore[no-untyped-def]
    """Ada with one HTTP tool that calls ``tool_url``."""
    return load_persona("ada", extra=(
        "tools:\n  call_timeout: 60s\n  entries:\n"
        "    - name: slow\n      description: Takes its time.\n"
        f"      http: {{url: '{tool_url}', timeout: 60s}}\n"
        "limits: {reply_deadline: 120s}\n"))


async def _main(db: Path, base_url: str, tool_url: str) -> None:
    store = await open_store(db)
    gateway = ModelGateway({"fake": ProviderSettings("fake", base_url=base_url)}, Secrets({}))
    dispatcher = build_dispatcher(store, PersonaRegistry([slow_tool_persona(tool_url)]),
                                  gateway, {"test": RecordingSink()})
    await dispatcher.start(schedule_resets=False)
    await dispatcher.ingest(human(text="@ada use the slow tool", message_id="crash-tool"))
    print("ingested", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
