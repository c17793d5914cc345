"""Real-shaped cards (V2 and V3, JSON and PNG with tEXt and iTXt chunks, English and
Chinese) import the way their authors expect: greetings, every text a template, lore
that fires (CJK keys inside sentences), a warning for every field dropped or
approximated, readable files without a second copy of the card's text, sensible ids;
World Info files become lorebooks personas include."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli
from core.gateway.tokens import estimate_tokens
from core.personas.cards import card_to_persona, read_card, world_info_to_lorebook
from core.personas.loader import load_persona_file
from core.personas.lorebook import scan_lorebook
from core.personas.prompt import render_text

from . import realcards
from .conftest import PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m"}}


def cli_import(project: Path, path: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                    "import", str(path), *args])


def fired(persona, text: str) -> list[str]:
    scan = scan_lorebook(persona.lorebook, [text], estimate_tokens,
                         context_tokens=persona.context.max_tokens)
    return [o.entry.keys[0] for o in scan.inserted]


def test_a_chinese_v3_png_with_an_itxt_chunk_imports_with_lore_that_fires(project: Path) -> None:
    card_file = project / "艾琳娜.png"
    card_file.write_bytes(realcards.png_with(realcards.chinese_v3(), chunk="iTXt",
                                             keyword="ccv3", compressed=True))
    result = cli_import(project, card_file)
    assert result.exit_code == 0, result.output
    target = project / "personas" / "ailinna.yaml"  # transliterated, not "character"
    assert f"imported '艾琳娜' as {target}" in result.stdout
    persona = load_persona_file(target, defaults=DEFAULTS, known_providers=PROVIDERS)
    assert persona.prompt.greeting == "*{persona}抬起头，对你笑了笑* 你好，{user}！你也是来找教堂的吗？"
    # the village key is inside the sentence: it fires (whole words do not apply to CJK)
    assert fired(persona, "我走进村庄看看教堂") == ["村庄", "教堂"]
    assert fired(persona, "村庄") == ["村庄"]
    # the card's 500-token budget holds none of its entries: the budget is the share of a
    # context big enough for the largest entry, and the import says so
    assert persona.lorebook.token_budget is None and persona.context.max_tokens >= 4 * 1000
    warnings = " ".join(result.stderr.split())
    for field in ("character_book.token_budget: 500 tokens cannot hold the largest entry",
                  "context.max_tokens: set to", "character_book.entries[1].extensions.group",
                  "group_only_greetings: 1 greeting(s)", "assets: the card's images",
                  "nickname: not used", "extensions.world: the card names the World Info "
                  "file '河谷'", "character_book.entries[2].extensions.position"):
        if field.endswith("position"):
            continue  # position 4 (at depth) is exact: no warning
        assert field in warnings, field
    marta = persona.lorebook.entries[2]
    assert (marta.position, marta.depth, marta.role, marta.probability) == (
        "at_depth", 2, "user", 50)


def test_an_english_v2_card_keeps_one_copy_of_its_text_and_renders_every_macro(
        project: Path) -> None:
    card_file = project / "seraphina.json"
    card_file.write_text(json.dumps(realcards.english_v2()), encoding="utf-8")
    result = cli_import(project, card_file)
    assert result.exit_code == 0, result.output
    target = project / "personas" / "seraphina.yaml"
    text = target.read_text(encoding="utf-8")
    persona = load_persona_file(target, defaults=DEFAULTS, known_providers=PROVIDERS)
    # the V1 copies at the top level and the carried fields are not written again: the
    # text is in the prompt (and its first line, for people, in description), only
    assert text.count("heals the wounded with her magic") == 2
    assert "heals the wounded" in persona.prompt.system and "heals" in persona.description
    assert "creatorcomment" not in text and "first_mes" not in text and "avatar" not in text
    assert persona.extensions["card"] == {"creator": "someone", "character_version": "2.1",
                                          "spec": "chara_card_v2", "spec_version": "2.0",
                                          "character_book": {"name": "Eldoria"}}
    variables = {"user": "Grace", "time": "14:05", "random_seed": "s"}
    assert render_text(persona, persona.prompt.greeting, variables, "greeting") == \
        "*Seraphina kneels beside you* You're safe now, Grace. It is 14:05."
    alternate = render_text(persona, persona.prompt.alternate_greetings[0], variables, "alt")
    assert alternate in ("*Seraphina hums* Good morning, Grace.",
                         "*Seraphina hums* Good evening, Grace.")
    example = persona.prompt.examples[0].assistant
    assert render_text(persona, example, variables, "ex") == \
        'In my glade, safe from the {"shadow": "beasts"}.'
    post = render_text(persona, persona.prompt.post_history or "", variables, "post")
    assert post.startswith("Reply in under ") and post.split()[3] in ("80", "120")
    warnings = " ".join(result.stderr.split())
    assert "post_history_instructions: the macro {{lastMessage}} has no equivalent" in warnings
    assert "extensions.depth_prompt: imported as a constant lorebook entry at depth 2" in warnings
    note = persona.lorebook.entries[-1]
    assert (note.content, note.position, note.depth) == ("{persona} is always gentle.",
                                                         "at_depth", 2)
    assert persona.lorebook.entries[1].position == "before_system"


def test_pngs_with_text_and_uncompressed_itxt_chunks_read_the_same_card(tmp_path: Path) -> None:
    card = realcards.english_v2()
    for name, png in (("a.png", realcards.png_with(card)),
                      ("b.png", realcards.png_with(card, chunk="iTXt")),
                      ("c.png", realcards.png_with(card, chunk="iTXt", compressed=True))):
        (tmp_path / name).write_bytes(png)
        assert read_card(tmp_path / name) == card


def test_a_name_with_nothing_to_transliterate_takes_the_file_name(project: Path) -> None:
    card_file = project / "Moon Cat.json"
    card_file.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": "★☆"}}),
                         encoding="utf-8")
    result = cli_import(project, card_file)
    assert result.exit_code == 0, result.output
    assert (project / "personas" / "moon-cat.yaml").exists()
    imported = card_to_persona({"name": "Сергей"})
    assert imported.persona_id == "sergey"


def test_a_world_info_file_imports_as_a_lorebook_that_personas_include(project: Path) -> None:
    world = project / "valley.json"
    world.write_text(json.dumps(realcards.world_info(), ensure_ascii=False), encoding="utf-8")
    result = cli_import(project, world)
    assert result.exit_code == 0, result.output
    book = project / "personas" / "lorebooks" / "valley.yaml"
    assert book.exists() and "lorebook: {include: [valley]}" in result.stdout
    assert "entries[1].extensions.automation_id" in " ".join(result.stderr.split())
    persona_file = project / "personas" / "ada.yaml"
    persona_file.write_text("id: ada\nname: Ada\nprompt: {system: hi}\n"
                            "lorebook: {include: [valley]}\n", encoding="utf-8")
    ada = load_persona_file(persona_file, defaults=DEFAULTS, known_providers=PROVIDERS)
    valley, war, council = ada.lorebook.entries
    assert ada.lorebook.include == ("valley",) and valley.position == "after_system"
    assert war.regex and (war.sticky, war.cooldown) == (2, 1)
    assert (council.position, council.depth, council.role) == ("at_depth", 0, "assistant")
    assert fired(ada, "我们在河谷里走着") == ["河谷"]
    assert fired(ada, "the EMBER  WAR") == []  # two spaces: the regex wants one
    assert fired(ada, "the Ember War") == ["ember\\s?war"]
    # the lorebook's text is part of the persona's version: an edit makes a new one
    before = ada.version
    book.write_text(book.read_text(encoding="utf-8").replace("forty", "fifty"), encoding="utf-8")
    after = load_persona_file(persona_file, defaults=DEFAULTS, known_providers=PROVIDERS)
    assert after.version != before and "fifty" in after.included["valley"]


def test_a_broken_or_missing_lorebook_is_a_located_error(project: Path) -> None:
    folder = project / "personas"
    (folder / "lorebooks").mkdir()
    (folder / "lorebooks" / "bad.yaml").write_text(
        "entries:\n  - keys: [x]\n    content: 'a {nope} here'\n", encoding="utf-8")
    (folder / "ada.yaml").write_text("id: ada\nname: Ada\nprompt: {system: hi}\n"
                                     "lorebook: {include: [bad, gone]}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                      "validate"])
    assert result.exit_code == 1
    assert (f"{folder / 'lorebooks' / 'bad.yaml'}:3:17: entries[0].content: unknown template "
            "variable {nope}") in result.output
    assert f"{folder / 'ada.yaml'}:4:27: lorebook.include[1]: no lorebook file 'gone'" in \
        result.output


def test_validate_warns_about_an_entry_its_budget_cannot_hold(project: Path) -> None:
    (project / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nprompt: {system: hi}\nlorebook:\n  token_budget: 50\n  entries:\n"
        f"    - name: village\n      keys: [村庄]\n      content: {realcards.VILLAGE_TEXT}\n"
        "    - keys: [small]\n      content: fits\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                      "validate"])
    assert result.exit_code == 0, result.output
    assert "ada.yaml:7:7: lorebook.entries[0]: the entry 'village' is about" in result.output
    assert "more than the lorebook's budget (50 tokens), so it is never inserted" in \
        result.output
    assert result.output.count("warning:") == 1


def test_the_world_info_shape_maps_entry_by_entry() -> None:
    imported = world_info_to_lorebook(realcards.world_info(), file_stem="valley")
    assert imported.name == "valley"
    assert [e["keys"] for e in imported.data["entries"]] == [
        ["河谷"], ["ember\\s?war"], ["Ashen Council"]]
    assert imported.data["entries"][2]["content"] == \
        "The Council meets at the {random:new,full} moon."
