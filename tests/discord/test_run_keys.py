"""``personae run`` with no key for a configured provider says so at start-up, once, with
the fix (instead of a failure notice to every user)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.fakes.discord import DiscordEmulator

from .test_run import finish, personae


async def test_an_unset_provider_key_is_named_once_at_start_up(
        emu: DiscordEmulator, tmp_path: Path) -> None:
    emu.add_guild("Test Guild")
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: openai, name: gpt-4o-mini}\n"
        "prompt: {system: You are Ada.}\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "database: {path: log.db, synchronous: normal}\npersonas: {dir: personas}\n"
        f"discord: {{api_base_url: '{emu.api_base_url}', token_env: TEST_DISCORD_TOKEN}}\n"
        "providers:\n  openai: {api_key_env: TEST_ONLY_UNSET_KEY}\n"
        "limits: {shutdown_deadline: 5s}\n", encoding="utf-8")
    process = await personae(config, "run", token=emu.token)
    try:
        await emu.wait_for_command("ask", timeout=20)
        process.send_signal(signal.SIGTERM)
        code, _out, err = await finish(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, err
    named = [line for line in err.splitlines() if "TEST_ONLY_UNSET_KEY is not set" in line]
    assert len(named) == 1, err
    assert "so ada cannot answer" in named[0] and ".env file next to config.yaml" in named[0]
