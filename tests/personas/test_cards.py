"""Character cards (V2, V3; JSON and PNG) import as valid persona files."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from core.personas.cards import card_to_persona, read_card, to_template
from core.personas.loader import load_persona_file
from core.problems import ProblemsError

from .conftest import PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m"}}

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "{{char}} is a forest guardian who protects {{user}}.\nShe heals.",
        "personality": "gentle, {wise}",
        "scenario": "{{user}} wakes up in {{char}}'s glade.",
        "first_mes": "*{{char}} smiles* You're awake, {{user}}.",
        "mes_example": (
            "<START>\n{{user}}: Who are you?\n{{char}}: I am {{char}}.\nI guard this forest.\n"
            "<START>\n{{user}}: Hi\n{{char}}: Hello, {{user}}."
        ),
        "creator_notes": "Best with a warm model. SECRET-NOTE",
        "system_prompt": "Write as {{char}}. {{original}}",
        "post_history_instructions": "Stay gentle with {{user}}.",
        "alternate_greetings": ["{{char}} waves.", "Morning, {{user}}."],
        "tags": ["fantasy", "healer"],
        "creator": "someone",
        "character_version": "1.2",
        "extensions": {"depth_prompt": {"depth": 4, "prompt": "x"}, "fav": True},
        "character_book": {
            "name": "Glade lore",
            "scan_depth": 3,
            "token_budget": 300,
            "recursive_scanning": False,
            "extensions": {"custom": 1},
            "entries": [
                {"keys": ["glade", "forest"], "content": "The glade hides {{char}}'s spring.",
                 "insertion_order": 5, "priority": 2, "enabled": True, "case_sensitive": False,
                 "secondary_keys": ["spring"], "selective": True,
                 "extensions": {"selectiveLogic": 3, "match_whole_words": False}},
                {"keys": [], "content": "Always: it is autumn.", "constant": True,
                 "insertion_order": 1, "enabled": True},
                {"keys": ["^rune\\d$"], "use_regex": True, "content": "Runes glow.",
                 "insertion_order": 9, "enabled": True},
            ],
        },
    },
}


def png_with_text(chunks: dict[str, bytes]) -> bytes:
    """A real 1x1 PNG with one tEXt chunk per keyword."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    texts = b"".join(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value)
                     for key, value in chunks.items())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + texts
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def b64(card: dict) -> bytes:
    return base64.b64encode(json.dumps(card).encode("utf-8"))


def import_and_load(tmp_path: Path, card: dict, **kwargs):
    imported = card_to_persona(card, **kwargs)
    path = tmp_path / f"{imported.persona_id}.yaml"
    path.write_text(imported.to_yaml("card.json"), encoding="utf-8")
    return imported, load_persona_file(path, defaults=DEFAULTS, known_providers=PROVIDERS)


def test_v2_card_maps_every_field(tmp_path: Path) -> None:
    imported, persona = import_and_load(tmp_path, V2_CARD)
    # the character's note has no persona field of its own: it becomes a lorebook entry
    assert imported.warnings == (
        "extensions.depth_prompt: imported as a constant lorebook entry at depth 4",)
    assert persona.id == "seraphina" and persona.name == "Seraphina"
    system = persona.prompt.system
    assert system.startswith("Write as {persona}. You are {persona}. Stay in character")
    assert "{persona} is a forest guardian who protects {user}." in system
    assert "gentle, {{wise}}" in system  # a literal brace stays literal
    assert "Scenario: {user} wakes up in {persona}'s glade." in system
    assert "SECRET-NOTE" not in system and persona.notes.endswith("SECRET-NOTE")
    assert persona.prompt.greeting == "*{persona} smiles* You're awake, {user}."
    assert persona.prompt.alternate_greetings == ("{persona} waves.", "Morning, {user}.")
    assert persona.prompt.post_history == "Stay gentle with {user}."
    assert [(e.user, e.assistant) for e in persona.prompt.examples] == [
        ("Who are you?", "I am {persona}.\nI guard this forest."),
        ("Hi", "Hello, {user}."),
    ]
    assert persona.tags == ("fantasy", "healer")
    assert persona.description == "Seraphina is a forest guardian who protects the user."
    book = persona.lorebook
    assert (book.scan_depth, book.token_budget) == (3, 300)
    glade, autumn, runes, note = book.entries
    assert glade.keys == ("glade", "forest") and glade.secondary_keys == ("spring",)
    assert glade.selective_logic == "and_all" and not glade.whole_words
    assert (glade.order, glade.priority) == (5, 2)
    # lorebook entries are templates like every prompt text
    assert glade.content == "The glade hides {persona}'s spring."
    assert autumn.constant and autumn.order == 1
    assert runes.regex and runes.keys == ("^rune\\d$",)
    assert (note.content, note.constant, note.position, note.depth) == ("x", True, "at_depth", 4)
    ext = persona.extensions
    assert "depth_prompt" not in ext and ext["fav"] is True
    assert ext["card"]["creator"] == "someone" and ext["card"]["spec"] == "chara_card_v2"
    assert ext["card"]["character_book"] == {"name": "Glade lore", "extensions": {"custom": 1}}
    # what a persona field carries is not kept a second time
    assert "entry_extensions" not in ext["card"]["character_book"]


def test_v3_card_from_png_prefers_ccv3(tmp_path: Path) -> None:
    v3 = json.loads(json.dumps(V2_CARD))
    v3["spec"], v3["spec_version"] = "chara_card_v3", "3.0"
    v3["data"]["name"] = "Seraphina Three"
    v3["data"]["nickname"] = "Sera"
    v3["data"]["assets"] = [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
    v3["data"]["group_only_greetings"] = []
    card_png = tmp_path / "card.png"
    card_png.write_bytes(png_with_text({"chara": b64(V2_CARD), "ccv3": b64(v3)}))
    card = read_card(card_png)
    _, persona = import_and_load(tmp_path, card)
    assert persona.id == "seraphina-three" and persona.name == "Seraphina Three"
    assert persona.extensions["card"]["nickname"] == "Sera"
    assert persona.extensions["card"]["assets"][0]["uri"] == "ccdefault:"


def test_v2_card_from_png_chara_chunk(tmp_path: Path) -> None:
    card_png = tmp_path / "card.png"
    card_png.write_bytes(png_with_text({"chara": b64(V2_CARD)}))
    assert read_card(card_png) == V2_CARD


def test_malformed_card_imports_with_warnings(tmp_path: Path) -> None:
    card = {
        "spec": "chara_card_v2",
        "data": {
            "name": "Glitch",
            "description": None,
            "personality": 42,
            "tags": "weird, broken",
            "mes_example": "{{char}}: a line with nobody asking",
            "character_book": {
                "scan_depth": "",
                "token_budget": "lots",
                "entries": [
                    {"keys": "a, b", "content": "comma keys", "insertion_order": "",
                     "priority": "", "enabled": ""},
                    {"keys": [], "content": "keyless"},
                    {"keys": ["x"], "content": ""},
                    "not an entry",
                    {"keys": ["("], "use_regex": True, "content": "bad regex"},
                ],
            },
        },
    }
    imported, persona = import_and_load(tmp_path, card)
    text = "\n".join(imported.warnings)
    for expected in ("personality: expected text", "tags: expected a list",
                     "token_budget: expected a number", "entries[0].keys",
                     "entries[1]: no keys", "entries[2]: no content", "entries[3]: expected an object",
                     "entries[4]: '(' is not a valid regex", "turn(s) without a partner"):
        assert expected in text, expected
    assert persona.tags == ("weird", "broken")
    comma, keyless, bad = persona.lorebook.entries
    assert comma.keys == ("a", "b") and comma.order == 100 and comma.enabled
    assert not keyless.enabled and not bad.enabled and not bad.regex
    assert persona.prompt.examples == ()


def test_not_a_card_is_a_clear_error(tmp_path: Path) -> None:
    plain_png = tmp_path / "plain.png"
    plain_png.write_bytes(png_with_text({"Comment": b"hello"}))
    with pytest.raises(ProblemsError, match="no character card"):
        read_card(plain_png)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": ', encoding="utf-8")
    with pytest.raises(ProblemsError, match="not valid JSON") as caught:
        read_card(bad_json)
    assert caught.value.problems[0].line == 1
    with pytest.raises(ProblemsError, match="no name"):
        card_to_persona({"spec": "chara_card_v2", "data": {"description": "x"}})


def test_macros_become_variables() -> None:
    assert to_template("{{Char}} & {{ user }} <BOT> <USER> {x}") == \
        "{persona} & {user} {persona} {user} {{x}}"


def test_cli_import_refuses_collisions_unless_id(project: Path) -> None:
    card_file = project / "sera.json"
    card_file.write_text(json.dumps(V2_CARD), encoding="utf-8")
    runner = CliRunner()
    args = ["--config", str(project / "config.yaml"), "personas", "import", str(card_file)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    target = project / "personas" / "seraphina.yaml"
    assert target.read_text().startswith("# yaml-language-server: $schema=./persona.schema.json")
    assert (project / "personas" / "persona.schema.json").exists()
    original = target.read_text()

    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "already exists" in again.output and "--id" in again.output
    assert target.read_text() == original

    renamed = runner.invoke(cli, [*args, "--id", "sera-two"])
    assert renamed.exit_code == 0, renamed.output
    assert load_persona_file(project / "personas" / "sera-two.yaml", defaults=DEFAULTS,
                             known_providers=PROVIDERS).name == "Seraphina"
    taken = runner.invoke(cli, [*args, "--id", "sera-two"])
    assert taken.exit_code == 2 and "already exists" in taken.output


def test_cli_import_png_prints_warnings(project: Path) -> None:
    card = {"spec": "chara_card_v3", "data": {"name": "Pip", "tags": "a,b"}}
    card_png = project / "pip.png"
    card_png.write_bytes(png_with_text({"ccv3": b64(card)}))
    result = CliRunner().invoke(
        cli, ["--config", str(project / "config.yaml"), "personas", "import", str(card_png)])
    assert result.exit_code == 0, result.output
    assert "tags: expected a list" in result.output
    assert (project / "personas" / "pip.yaml").exists()


def test_cli_import_refuses_an_id_used_by_another_file(project: Path) -> None:
    (project / "personas" / "other.yaml").write_text(
        "id: taken\nname: Someone\nprompt: {system: hi}\n", encoding="utf-8")
    card_file = project / "sera.json"
    card_file.write_text(json.dumps(V2_CARD), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                      "import", str(card_file), "--id", "taken"])
    assert result.exit_code == 2 and "id 'taken' already exists" in result.output
    assert not (project / "personas" / "taken.yaml").exists()


def test_cli_import_without_model_defaults_writes_a_model(project: Path) -> None:
    config = project / "config.yaml"
    config.write_text(config.read_text().replace(
        "  model: {provider: openai, name: gpt-4o-mini}\n", ""), encoding="utf-8")
    card_file = project / "sera.json"
    card_file.write_text(json.dumps(V2_CARD), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "personas", "import",
                                      str(card_file)])
    assert result.exit_code == 0, result.output
    persona = load_persona_file(project / "personas" / "seraphina.yaml", defaults={},
                                known_providers=PROVIDERS)
    assert (persona.model.provider, persona.model.name) == ("local", "gpt-4o-mini")
