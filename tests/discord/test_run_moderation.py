"""``personae run`` as a real process with moderation and an nsfw persona configured:
the warnings at start-up, and the moderation step config.yaml describes in action."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .test_run import finish, personae, until


async def test_run_warns_about_nsfw_settings_and_moderates_as_config_says(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        fake.moderate("insult", harassment=0.99)
        (tmp_path / "personas").mkdir()
        (tmp_path / "personas" / "ada.yaml").write_text(
            "id: ada\nname: Ada\nmodel: {provider: fake, name: fake-model}\n"
            "prompt: {system: You are Ada.}\ntriggers: {keywords: [ada]}\n")
        (tmp_path / "personas" / "lilith.yaml").write_text(
            "id: lilith\nname: Lilith\nnsfw: true\nmodel: {provider: fake, name: fake-model}\n"
            f"prompt: {{system: hi}}\ntriggers: {{dm: true, channels: ['{server.general.id}']}}\n")
        config = tmp_path / "config.yaml"
        config.write_text(
            "database: {path: log.db, synchronous: normal}\npersonas: {dir: personas}\n"
            f"discord: {{api_base_url: '{emu.api_base_url}', token_env: TEST_DISCORD_TOKEN}}\n"
            f"providers:\n  fake: {{base_url: '{fake.base_url}', timeout: 10s}}\n"
            "moderation: {provider: fake, outbound: false}\n"
            "limits: {shutdown_deadline: 10s}\nlogging: {level: info}\n")
        process = await personae(config, "run", token=emu.token)
        try:
            await emu.wait_for_command("ask", timeout=20)
            rude = await emu.user_says(server.alice, server.general, "ada, an insult")
            await until(lambda: any(m.id > rude.id for m in emu.messages_in(server.general)))
            # the channel check runs once the guilds are ready, as the catch-up does
            await until(lambda: bool(emu.requests_to("GET /channels/{channel_id}/messages")))
            process.send_signal(signal.SIGTERM)
            code, out, err = await finish(process)
            assert "Traceback" not in out + err
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert code == 0, err
    said = [m.content for m in emu.messages_in(server.general) if m.id > rude.id]
    assert said == ["I can't respond to that message."]
    assert [r.body["input"] for r in fake.moderation_requests] == ["ada, an insult"]
    text = " ".join(err.split())
    assert "triggers.dm: the persona is nsfw and config.yaml does not allow nsfw personas " \
           "in DMs" in text
    assert (f"persona lilith is nsfw, but channel {server.general.id} (#general) is not "
            "age-restricted") in text
