"""``personae run`` stopping early leaves no task to fail unheard on a closed session."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.discord import DiscordEmulator

from .test_run import finish, personae, write_config

APPLICATION_INFO = "GET /oauth2/applications/@me"


async def test_a_bot_stopped_right_after_login_leaves_no_task_exception(
        tmp_path: Path) -> None:
    async with DiscordEmulator(enabled_privileged_intents=0) as emu:
        emu.add_guild("Test Guild")
        held = emu.stall(APPLICATION_INFO)  # the owner lookup disnake fires at login
        config = write_config(tmp_path, emu.api_base_url)
        try:
            code, out, err = await finish(await personae(config, "run", token=emu.token))
        finally:
            held.release()
        await asyncio.sleep(0)

    assert code == 2
    assert "Task exception was never retrieved" not in err + out
    assert "Session is closed" not in err + out and "Traceback" not in err + out
