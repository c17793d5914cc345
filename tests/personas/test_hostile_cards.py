"""Character cards made to hurt: every size is capped and said, numbers JSON cannot
hold are repaired, invalid Unicode is refused naming the card and the field. A
refused card exits 2 with one sentence and writes nothing."""

from __future__ import annotations

import base64
import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.cli import cli
from core.personas.cards import card_to_persona, read_card
from core.personas.loader import load_persona_file

from .conftest import PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m"}}


def chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png(*chunks: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + b"".join(chunks)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def deflated(size: int) -> bytes:
    """``size`` bytes of base64-looking text, compressed (a few hundred KB per 100 MB)."""
    packer = zlib.compressobj(9)
    block = b"QUFB" * (1 << 18)  # 1 MiB
    return b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()


def b64(card: dict) -> bytes:
    return base64.b64encode(json.dumps(card).encode("utf-8"))


def import_card(project: Path, card_file: Path) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                    "import", str(card_file)])


def refused(result: Result, project: Path) -> str:
    """The one error line of a refused import, after checking nothing was written."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert [p.name for p in (project / "personas").iterdir()
            if p.name != "persona.schema.json"] == []
    return errors[0]


@pytest.fixture
def bounded_memory():
    tracemalloc.start()
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 5 and peak < 80e6, (elapsed, peak)


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_a_compressed_chunk_that_inflates_without_bound_is_refused(
        project: Path, kind: str, bounded_memory: None) -> None:
    bomb = deflated(200 * 1024 * 1024)
    body = (b"chara\0\0" + bomb if kind == "zTXt"
            else b"chara\0\x01\x00\0\0" + bomb)
    card_file = project / "bomb.png"
    card_file.write_bytes(png(chunk(kind.encode(), body)))
    assert card_file.stat().st_size < 3 * 1024 * 1024
    error = refused(import_card(project, card_file), project)
    assert "bomb.png" in error and "inflates to more than 24 MiB" in error


def test_a_bomb_in_a_chunk_that_is_not_the_card_is_never_inflated(
        project: Path, bounded_memory: None) -> None:
    card = {"spec": "chara_card_v2", "data": {"name": "Pip"}}
    card_file = project / "pip.png"
    card_file.write_bytes(png(chunk(b"zTXt", b"Comment\0\0" + deflated(200 * 1024 * 1024)),
                              chunk(b"tEXt", b"chara\0" + b64(card))))
    assert read_card(card_file)["data"]["name"] == "Pip"


def test_a_compressed_itxt_card_is_read(project: Path) -> None:
    card = {"spec": "chara_card_v3", "data": {"name": "Zed"}}
    card_file = project / "zed.png"
    card_file.write_bytes(png(chunk(b"iTXt", b"ccv3\0\x01\x00en\0\0" + zlib.compress(b64(card)))))
    assert read_card(card_file)["data"]["name"] == "Zed"


def test_nesting_a_hundred_thousand_deep_is_refused(project: Path) -> None:
    card_file = project / "deep.json"
    card_file.write_text('{"name": "Deep", "extensions": {"x": ' + "[" * 100_000
                         + "]" * 100_000 + "}}")
    error = refused(import_card(project, card_file), project)
    assert "deep.json" in error and "more than 48 levels deep" in error
    card_file.write_text('{"name": "Deep", "extensions": {"x": ' + "[" * 60 + "]" * 60 + "}}")
    error = refused(import_card(project, card_file), project)
    assert "more than 48 levels deep" in error


def test_numbers_json_cannot_hold_are_repaired_with_warnings(project: Path) -> None:
    card_file = project / "odd.json"
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {
        "name": "Odd",
        "extensions": {"weight": float("inf"), "ok": 1, "big": 10**30},
        "character_book": {
            "scan_depth": float("nan"), "token_budget": "1e999",
            "entries": [{"keys": ["a"], "content": "c", "insertion_order": float("-inf"),
                         "priority": 1e300, "extensions": {"scan_depth": 10**40}}],
        }}}))
    assert "Infinity" in card_file.read_text() and "NaN" in card_file.read_text()
    card_file.write_text(card_file.read_text().replace('"1e999"', "1e999"))
    result = import_card(project, card_file)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # the console wraps long warnings
    for warning in ("character_book.scan_depth: nan is not a usable number",
                    "character_book.token_budget: inf is not a usable number",
                    "entries[0].insertion_order: -inf is not a usable number; used 100",
                    "entries[0].priority: 1e+300 is out of range",
                    "entries[0].extensions.scan_depth: 1e+40 is out of range; used 1000",
                    "extensions.weight: inf cannot be kept in a persona file",
                    "extensions.big: 10000000000000000000000000... cannot be kept in a persona "
                    "file"):
        assert warning in output, output
    persona = load_persona_file(project / "personas" / "odd.yaml", defaults=DEFAULTS,
                                known_providers=PROVIDERS)
    assert persona.extensions["weight"] is None and persona.extensions["ok"] == 1
    assert persona.lorebook.entries[0].order == 100
    assert persona.lorebook.entries[0].scan_depth == 1000


def test_a_lone_surrogate_names_the_card_and_the_field_and_writes_nothing(
        project: Path) -> None:
    card_file = project / "sur.json"
    card_file.write_text('{"spec": "chara_card_v2", "data": {"name": "Sur", '
                         '"first_mes": "hi", "description": "bad \\ud800 here"}}')
    error = refused(import_card(project, card_file), project)
    assert error.startswith(f"error: {card_file}:1:1: data.description: ")
    assert "lone surrogate \\ud800" in error and "personas" not in error


@pytest.mark.parametrize(("size", "name", "message"), [
    (40 * 1024 * 1024, "huge.png", "larger than 32 MiB, the most a character card may be"),
    (20 * 1024 * 1024, "huge.json", "JSON is larger than 16 MiB"),
])
def test_files_past_the_caps_are_refused(project: Path, size: int, name: str,
                                         message: str) -> None:
    card_file = project / name
    card = {"spec": "chara_card_v2", "data": {"name": "Big", "extensions": {
        f"blob{i}": "x" * 900_000 for i in range(size // 900_000 + 1)}}}
    if name.endswith(".png"):
        card_file.write_bytes(png(chunk(b"tEXt", b"chara\0" + b64(card))))
    else:
        card_file.write_text(json.dumps(card))
    assert card_file.stat().st_size > size
    error = refused(import_card(project, card_file), project)
    assert name in error and message in error


def test_a_field_past_its_cap_is_refused_naming_it(project: Path) -> None:
    card_file = project / "long.json"
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {
        "name": "Long", "scenario": "y" * 1_000_001}}))
    error = refused(import_card(project, card_file), project)
    assert "data.scenario: is 1,000,001 characters long, more than the 1,000,000" in error
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": "N" * 81}}))
    error = refused(import_card(project, card_file), project)
    assert "name: the card's name is 81 characters long; a persona name has at most 80" in error


def test_a_card_that_would_make_a_persona_past_the_file_cap_is_refused(project: Path) -> None:
    card_file = project / "wide.json"
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {
        "name": "Wide", "alternate_greetings": ["g" * 900_000] * 5}}))
    error = refused(import_card(project, card_file), project)
    assert "wide.json" in error
    assert "would be 4.3 MiB, more than the 4 MiB a persona file may hold" in error


def test_a_persona_limit_is_reported_against_the_card(project: Path) -> None:
    card_file = project / "many.json"
    entries = [{"keys": [f"k{i}"], "content": "c"} for i in range(5001)]
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {
        "name": "Many", "character_book": {"entries": entries}}}))
    error = refused(import_card(project, card_file), project)
    assert error.startswith(f"error: {card_file}:1:1: lorebook.entries: has 5001 items, more "
                            "than the 5000 allowed (in the persona made from this card")


def test_regex_keys_re2_cannot_take_import_disabled() -> None:
    imported = card_to_persona({"spec": "chara_card_v2", "data": {"name": "R", "character_book": {
        "entries": [{"keys": ["(a)\\1"], "use_regex": True, "content": "c"}]}}})
    [entry] = imported.data["lorebook"]["entries"]
    assert entry["enabled"] is False and entry.get("regex", False) is False
    assert any("backreference" in w for w in imported.warnings)


def test_example_dialogue_made_of_blank_lines_splits_in_linear_time() -> None:
    # <START> was found with ^\s*<START>\s*$: \s* spans lines, so each blank line
    # rescanned all the others, and a turn's lines were added one by one (both
    # quadratic: 20,000 blank lines took a second)
    text = "<START>\n{{user}}: hi\n{{char}}: hello\n" + "\n" * 900_000 + " " * 50_000 + "x"
    started = time.perf_counter()
    imported = card_to_persona({"spec": "chara_card_v2", "data": {"name": "B",
                                                                  "mes_example": text}})
    assert time.perf_counter() - started < 2
    [example] = imported.data["prompt"]["examples"]
    assert example["user"] == "hi" and example["assistant"].startswith("hello\n\n")
