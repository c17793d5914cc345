"""Exact prompts with attachments and tool rounds: for every reply of a conversation
with images, files, an edit that changes them and a tool reply, `personae explain`
rebuilds from the log the very messages the fake model received."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli
from core.config import AttachmentSettings, PrivacySettings
from core.dispatcher.dispatcher import DispatcherSettings
from core.dispatcher.messages import InboundEdit
from core.media.intake import AttachmentIntake, Offered
from core.personas.loader import load_persona_file
from tests.dispatcher.conftest import PROVIDERS, close_harness, human, make_harness, settle
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.media.files import pdf, png


async def _files(**contents: bytes):  # type: ignore[no-untyped-def]
    async def fetch(item: Offered, max_bytes: int, timeout_s: float) -> bytes:
        return contents[item.filename]

    return await AttachmentIntake(AttachmentSettings()).take(
        [Offered(id=name, filename=name, media_type="", size=len(data), url=None)
         for name, data in contents.items()], fetch)


async def test_explain_rebuilds_prompts_with_attachments_and_tools_exactly(
        tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: fake, name: fake-model, vision: true}\n"
        "prompt: {system: 'You are {persona}, with {user}.'}\n"
        "context: {max_images: 2}\ntools: [roll, lore]\n")
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n"
                      f"providers:\n  fake: {{base_url: '{fake_openai.base_url}'}}\n")
    ada = load_persona_file(tmp_path / "personas" / "ada.yaml", defaults={},
                            known_providers=PROVIDERS)
    # edit history kept: the prompt from before the edit rebuilds exactly
    settings = DispatcherSettings(privacy=PrivacySettings(keep_edit_history=True))
    harness = await make_harness(tmp_path, [ada], fake_openai, settings=settings)
    try:
        ask = harness.dispatcher.ingest
        first = human("u1", "@ada here are files", invoked_persona="ada")
        first = replace(first, attachments=await _files(**{
            "a.png": png(100, 50), "b.png": png(60, 60), "c.txt": b"three", "d.pdf": pdf(["four"])}))
        await settle(await ask(first))
        await harness.dispatcher.edit(InboundEdit(
            platform="test", message_id=first.message_id, channel_id="c1", text="fewer files",
            edited_at="e1", attachments=(first.attachments[1], first.attachments[2])))
        await settle(await ask(replace(human("u1", "and this one?", invoked_persona="ada"),
                                       attachments=await _files(**{"e.png": png(5, 5)}))))
        fake_openai.script(Fault.tool_calls(("roll", {"expression": "d20"})))
        await settle(await ask(human("u1", "roll a d20", invoked_persona="ada")))
        await harness.dispatcher.wait_idle()
        replies = await harness.events("ModelReplied")
    finally:
        await close_harness(harness)

    assert [r.data["tools_called"] for r in replies] == [0, 0, 1]
    assert len(fake_openai.requests) == 4
    for replied in replies:
        result = CliRunner().invoke(cli, ["--config", str(config), "explain",
                                          replied.data["message_id"], "--json"])
        assert result.exit_code == 0, result.output
        (call,) = json.loads(result.stdout)["calls"]
        (sent,) = [r for r in fake_openai.requests
                   if FakeOpenAI.reply_for(r.messages) == replied.data["text"]]
        assert call["messages"] == sent.messages
    edited_turn = fake_openai.requests[1].messages[1]
    assert [p["type"] for p in edited_turn["content"]] == ["text", "image_url"], \
        "the edit dropped a.png and d.pdf"
    assert "[file c.txt (text/plain, 5 bytes)]\nthree" in edited_turn["content"][0]["text"]
    readable = CliRunner().invoke(cli, ["--config", str(config), "explain",
                                        replies[1].data["message_id"]])
    assert readable.exit_code == 0, readable.output
    assert "[image e.png (image/png, 5x5, " in readable.stdout
    assert "[file c.txt (text/plain, 5 bytes)]" in readable.stdout
    timeline = " ".join(CliRunner().invoke(cli, ["--config", str(config), "replay"]).stdout
                        .split())
    assert "ada called roll({\"expression\": \"d20\"}) in round 1" in timeline
    assert "roll returned in" in timeline and "stored a file (image, image/png, " in timeline
    assert "edited to \"fewer files\", now with 2 file(s)" in timeline
