"""Attachments end to end: files posted in the emulator, fetched once from its CDN, stored
in the log by their hash, and sent to the fake OpenAI server as parts of the message."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import aiohttp

from core.adapters.discord import DiscordAdapterSettings
from core.config import AttachmentSettings
from core.personas.loader import load_persona_text
from core.personas.model import Persona
from tests.fakes.discord import DiscordEmulator, File
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI, image_parts, text_of
from tests.media.files import pdf, png

from .conftest import PROVIDERS, running_bot, until_recorded


def persona(persona_id: str = "ada", *, vision: bool = False, extra: str = "") -> Persona:
    """A persona through the real loader, seeing images when ``vision``."""
    text = (f"id: {persona_id}\nname: {persona_id.capitalize()}\n"
            f"model: {{provider: fake, name: fake-model, vision: {str(vision).lower()}}}\n"
            "prompt:\n  system: 'You are {persona}.'\n" + extra)
    return load_persona_text(text, file=f"{persona_id}.yaml", defaults={},
                             known_providers=PROVIDERS)


def settings(**caps: object) -> DiscordAdapterSettings:
    return DiscordAdapterSettings(attachments=AttachmentSettings(
        hosts=frozenset({"127.0.0.1"}), **caps))  # type: ignore[arg-type]


async def test_an_image_reaches_a_vision_model_as_an_image_part(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    image = png(640, 480)
    ada = persona("ada", vision=True)
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           settings=settings()) as bot:
        asked = await emu.user_says(server.alice, server.general, "what colour is this?",
                                    mentions=[emu.bot_user],
                                    files=[File("red.png", image, "image/png")])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        received = (await bot.events("MessageReceived"))[-1]
        stored = await bot.events("AttachmentStored")

    last = fake_openai.requests[-1].messages[-1]
    assert text_of(last["content"]) == "what colour is this?"
    (part,) = image_parts(last)
    assert part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(image).decode()
    digest = hashlib.sha256(image).hexdigest()
    (blob,) = stored
    assert (blob.stream_id, blob.event_id) == (f"blob:{digest}", f"blob:{digest}")
    assert (blob.data["width"], blob.data["height"], blob.data["size"]) == (640, 480, len(image))
    (recorded,) = received.data["attachments"]
    assert recorded["sha256"] == digest and recorded["filename"] == "red.png"
    assert recorded["refused"] is None and recorded["url"].startswith("http://127.0.0.1:")
    assert [r.status for r in emu.cdn_requests] == [200], "fetched once"


async def test_a_text_file_and_a_pdf_are_inlined_with_headers(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    notes = b"def add(a, b):\n    return a + b\n"
    report = pdf(["Revenue grew by 12 percent", "Costs fell by 3 percent"])
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai,
                           settings=settings()) as bot:
        asked = await emu.user_says(
            server.alice, server.general, "review these", mentions=[emu.bot_user],
            files=[File("add.py", notes, "text/x-python; charset=utf-8"),
                   File("report.pdf", report, "application/pdf")])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()

    content = fake_openai.requests[-1].messages[-1]["content"]
    assert isinstance(content, str), "no image: the message stays plain text"
    assert content == (
        "review these\n\n"
        "[file add.py (text/x-python, 32 bytes)]\ndef add(a, b):\n    return a + b\n\n"
        "[end of add.py]\n\n"
        "[file report.pdf (PDF, 2 pages)]\n[page 1]\nRevenue grew by 12 percent\n"
        "[page 2]\nCosts fell by 3 percent\n[end of report.pdf]")


async def test_a_persona_without_vision_gets_a_note_instead_of_the_image(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai,
                           settings=settings()) as bot:
        asked = await emu.user_says(server.alice, server.general, "look", mentions=[emu.bot_user],
                                    files=[File("cat.png", png(), "image/png")])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()

    last = fake_openai.requests[-1].messages[-1]
    assert last["content"] == "look\n\n[image cat.png attached: this model cannot see images]"
    assert image_parts(last) == []


async def test_caps_refuse_big_files_before_downloading_and_the_prompt_says_so(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    big = b"a" * 3000
    ada = persona("ada", vision=True, extra="context: {max_images: 1}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           settings=settings(max_file_bytes=2000, max_files=3)) as bot:
        asked = await emu.user_says(
            server.alice, server.general, "files", mentions=[emu.bot_user],
            files=[File("big.txt", big, "text/plain"), File("one.png", png(2, 2), "image/png"),
                   File("two.png", png(3, 3), "image/png"),
                   File("three.png", png(4, 4), "image/png"),
                   File("four.png", png(5, 5), "image/png")])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        received = (await bot.events("MessageReceived"))[-1]

    refused = {a["filename"]: a["refused"] for a in received.data["attachments"]}
    assert refused == {"big.txt": "over the cap of 2 KB per file", "one.png": None,
                       "two.png": None, "three.png": None,
                       "four.png": "over the cap of 3 files per message"}
    downloaded = sorted(r.path.rsplit("/", 1)[-1] for r in emu.cdn_requests)
    assert downloaded == ["one.png", "three.png", "two.png"]
    last = fake_openai.requests[-1].messages[-1]
    assert len(image_parts(last)) == 1, "max_images: 1"
    assert text_of(last["content"]) == (
        "files\n\n[file big.txt not read: over the cap of 2 KB per file]\n\n"
        "[image two.png not shown: only the newest 1 images are]\n\n"
        "[image three.png not shown: only the newest 1 images are]\n\n"
        "[image four.png not read: over the cap of 3 files per message]")


async def test_an_edit_that_removes_a_file_updates_the_context(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai,
                           settings=settings()) as bot:
        first = await emu.user_says(server.alice, server.general, "two notes",
                                    files=[File("a.txt", b"alpha", "text/plain"),
                                           File("b.txt", b"bravo", "text/plain")])
        await until_recorded(bot, first)
        kept = emu.message(first.id).attachments[1].id
        await emu.user_edits(first, "one note", keep_files=[kept])
        edited = await _until_events(bot, "MessageEdited")
        asked = await emu.user_says(server.alice, server.general, "what did I send?",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()

    assert [a["filename"] for a in edited[0].data["attachments"]] == ["b.txt"]
    history = fake_openai.requests[-1].messages[-2]
    assert history["content"] == "one note\n\n[file b.txt (text/plain, 5 bytes)]\nbravo\n" \
                                 "[end of b.txt]"
    assert [r.status for r in emu.cdn_requests] == [200, 200], "the kept file is not fetched again"


async def test_an_expired_link_still_reproduces_the_prompt_from_stored_content(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    from tests.replay.conftest import ROOT

    image, notes = png(32, 16), b"remember the milk"
    ada = persona("ada", vision=True)
    (tmp_path / "personas").mkdir()
    (tmp_path / "config.yaml").write_text(
        f"database: {{path: log.db}}\npersonas: {{dir: personas}}\n"
        f"providers:\n  fake: {{base_url: '{fake_openai.base_url}'}}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           settings=settings()) as bot:
        asked = await emu.user_says(server.alice, server.general, "describe",
                                    mentions=[emu.bot_user],
                                    files=[File("pic.png", image, "image/png"),
                                           File("todo.txt", notes, "text/plain")])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        url = (await bot.events("MessageReceived"))[-1].data["attachments"][0]["url"]
    original = fake_openai.requests[-1].messages

    emu.expire_attachment_links()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 404
        assert await response.text() == "This content is no longer available."

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", "--config", str(tmp_path / "config.yaml"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("explain", str(asked.id), "--json")
    assert code == 0, err
    assert json.loads(out)["calls"][0]["messages"] == original
    code, out, err = await cli("rerun", str(asked.id), "--recorded")
    assert code == 0, err
    assert fake_openai.requests[-1].messages == original, "the same bytes, byte for byte"
    assert "the prompt is the same as recorded" in out
    assert all(r.status == 200 for r in emu.cdn_requests[:2]) and len(emu.cdn_requests) == 3


async def _until_events(bot, kind: str):  # type: ignore[no-untyped-def]
    import asyncio

    for _ in range(500):
        found = await bot.events(kind)
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} recorded")
