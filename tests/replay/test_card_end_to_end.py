"""End to end, as a new user would: import a real-shaped character card (a V3 PNG with a
multilingual lorebook and greetings), chat with it in the terminal, and read through
`personae explain` that the greeting came first, that the lore entries fired on a
sentence with their keys inside it (a Chinese key included), and that every prompt
text reached the model rendered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eventstore import SQLiteLog
from tests.personas.realcards import VILLAGE_TEXT, png_with

from .conftest import ROOT

CARD = {"spec": "chara_card_v3", "spec_version": "3.0", "data": {
    "name": "Lin Wei 林薇",
    "description": "{{char}} keeps the lighthouse above the village and knows {{user}} "
                   "from the market.",
    "personality": "calm, dry humour",
    "scenario": "{{user}} climbs the lighthouse stairs at {{time}}.",
    "first_mes": "*{{char}} looks up from the lamp* {{random:Evening,Hello}}, {{user}}. "
                 "Mind the {\"loose\": \"step\"}.",
    "alternate_greetings": ["{{char}} waves at {{user}} from the gallery."],
    "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: {{char}}, the keeper.",
    "system_prompt": "{{original}} Write in English or 中文, as {{user}} does.",
    "post_history_instructions": "Answer {{user}} in under 100 words.",
    "creator_notes": "", "tags": ["slice of life"],
    "character_book": {"name": "Coast", "entries": [
        {"keys": ["村庄"], "content": VILLAGE_TEXT, "insertion_order": 10, "enabled": True,
         "comment": "village", "use_regex": True, "extensions": {"position": 1}},
        {"keys": ["lighthouse"], "content": "{{char}}'s lighthouse has a green lamp.",
         "insertion_order": 20, "enabled": True, "comment": "lighthouse",
         "extensions": {"position": 0}},
        {"keys": ["教堂"], "content": "The chapel bell is {{char}}'s alarm.",
         "insertion_order": 30, "enabled": True, "comment": "chapel",
         "extensions": {"position": 4, "depth": 0, "role": 0}},
        {"keys": ["dragon"], "content": "There are no dragons.", "enabled": True,
         "comment": "dragons"},
    ]},
}}
SENTENCE = "我走进村庄看看教堂, then I walk up to the lighthouse"


def personae(project: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PERSONAE_CONFIG",
                                                           "TEST_ONLY_OPENAI_KEY")}
    return subprocess.run([sys.executable, "-m", "core.cli", *args, "--config",
                           str(project / "config.yaml")], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)


def test_an_imported_card_greets_first_fires_its_lore_and_renders_every_text(
        tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "config.yaml").write_text(
        "database: {path: log.db}\npersonas: {dir: personas}\n"
        "providers:\n  openai: {api_key_env: TEST_ONLY_OPENAI_KEY}\n"
        "persona_defaults:\n  model: {provider: openai, name: gpt-4o-mini}\n", encoding="utf-8")
    card = tmp_path / "lin-wei.png"
    card.write_bytes(png_with(CARD, chunk="iTXt", keyword="ccv3", compressed=True))

    imported = personae(tmp_path, "personas", "import", str(card))
    assert imported.returncode == 0, imported.stderr
    assert (tmp_path / "personas" / "lin-wei-linwei.yaml").exists()
    chat = personae(tmp_path, "chat", "Lin Wei 林薇", "--user", "Grace", "--offline",
                    stdin=SENTENCE + "\n")
    assert chat.returncode == 0, chat.stderr
    said = [line for line in chat.stdout.splitlines() if line.startswith("Lin Wei 林薇: ")]
    assert len(said) == 2 and "Grace" in said[0] and SENTENCE in said[1]  # greeting first

    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        (message,) = log.read_all(types=["MessageReceived"])
    finally:
        log.close()
    explained = personae(tmp_path, "explain", message.data["message_id"], "--json")
    assert explained.returncode == 0, explained.stderr
    (call,) = json.loads(explained.stdout)["calls"]
    messages = [(m["role"], m["content"]) for m in call["messages"]]

    # the greeting opened the conversation: the first turn after the examples
    greeting = call["greeting"]["text"]
    assert greeting in ('*Lin Wei 林薇 looks up from the lamp* Evening, Grace. Mind the '
                        '{"loose": "step"}.', '*Lin Wei 林薇 looks up from the lamp* Hello, '
                        'Grace. Mind the {"loose": "step"}.',  # the greeting, or...
                        "Lin Wei 林薇 waves at Grace from the gallery.")  # ...the alternate
    assert said[0] == f"Lin Wei 林薇: {greeting}"
    turns = [m for m in messages if m[0] != "system"]
    assert turns == [("user", "Who are you?"), ("assistant", "Lin Wei 林薇, the keeper."),
                     ("assistant", greeting), ("user", SENTENCE)]
    # the lore fired on the sentence, the Chinese keys inside it included; the entry
    # placed at depth 0 comes after the message answered, before the post-history text
    lore = {e["name"]: e for e in call["lore"]["entries"]}
    assert {n for n, e in lore.items() if e["status"] == "inserted"} == {
        "village", "lighthouse", "chapel"}
    assert lore["village"]["reason"] == "key '村庄' in the message answered"
    assert "dragons" not in lore
    assert messages[0] == ("system", "Lin Wei 林薇's lighthouse has a green lamp.")
    assert any(m == ("system", VILLAGE_TEXT) for m in messages)
    assert messages[-2:] == [("system", "The chapel bell is Lin Wei 林薇's alarm."),
                             ("system", "Answer Grace in under 100 words.")]
    # every prompt text rendered: no variable, macro or doubled brace reached the model
    system = next(c for r, c in messages if r == "system" and "keeps the lighthouse" in c)
    assert "Write in English or 中文, as Grace does." in system
    assert "Grace climbs the lighthouse stairs at " in system
    assert ("user", "Who are you?") in messages
    assert ("assistant", "Lin Wei 林薇, the keeper.") in messages
    for _, content in messages:
        assert "{user}" not in content and "{persona}" not in content
        assert "{{" not in content and "{random" not in content and "{time}" not in content

    text = personae(tmp_path, "explain", message.data["message_id"])
    assert text.returncode == 0, text.stderr
    shown = " ".join(text.stdout.split())
    assert f"the conversation opened with greeting {call['greeting']['choice']} (chosen at " \
        "random)" in shown
    assert "inserted village" in shown and "key '村庄' in the message answered" in shown
