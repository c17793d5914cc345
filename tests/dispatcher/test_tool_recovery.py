"""kill -9 while a tool runs, then restart: the reply is finished from its recorded
rounds, the interrupted call is recorded as such and never run twice (it may have
done its work), and the model is not asked again for the round it already made."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from core.dispatcher.toolsteps import INTERRUPTED
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import close_harness, make_harness, open_store
from .tool_crash_child import slow_tool_persona

ROOT = Path(__file__).resolve().parents[2]


async def test_a_kill_during_a_tool_call_is_finished_once_without_running_it_again(
        tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    hits: list[str] = []
    stalled = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        hits.append(request.path)
        stalled.set()
        await asyncio.sleep(3600)
        return web.Response()

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    tool_url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
    db = tmp_path / "log.db"
    fake_openai.script(Fault.tool_calls(("slow", {})))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.dispatcher.tool_crash_child", str(db),
        fake_openai.base_url, tool_url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(stalled.wait(), 30)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    asked_before = len(fake_openai.requests)
    try:
        for restart in range(2):
            harness = await make_harness(tmp_path, [slow_tool_persona(tool_url)], fake_openai,
                                         store=await open_store(db), start=False)
            try:
                report = await harness.dispatcher.start(schedule_resets=False)
                await harness.dispatcher.wait_idle()
                assert len(report.rerun) == (1 if restart == 0 else 0)
                results = await harness.events("ToolResult")
                replied = await harness.events("ModelReplied")
            finally:
                await close_harness(harness)
    finally:
        await runner.cleanup()

    assert hits == ["/slow"], "the interrupted call is not run again"
    assert [(r.data["ok"], r.data["error"], r.data["content"]) for r in results] == [
        (False, "interrupted", INTERRUPTED)]
    (reply,) = replied
    assert (reply.data["tools_called"], reply.data["model_calls"]) == (1, 2)
    assert len(fake_openai.requests) == asked_before + 1, "round 1 is not asked again"
    last = fake_openai.requests[-1].messages
    assert [m["role"] for m in last[-2:]] == ["assistant", "tool"]
    assert last[-1]["content"] == INTERRUPTED
