"""``personae personas``: validate, list, show, new."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli

from .conftest import MINIMAL


def run(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas", *args])


def test_validate_ok_and_failing(project: Path) -> None:
    personas = project / "personas"
    (personas / "ada.yaml").write_text(MINIMAL, encoding="utf-8")
    ok = run(project, "validate")
    assert ok.exit_code == 0 and "ok: 1 persona file(s) valid" in ok.output

    bad = personas / "bad.yaml"
    bad.write_text("id: bad\nname: Bad\nprompt: {system: hi}\nlimits: {reply_deadline: soon}\n",
                   encoding="utf-8")
    failing = run(project, "validate")
    assert failing.exit_code == 1
    assert (f'{bad}:4:26: limits.reply_deadline: "soon" is not a duration (use 60s, 5m, 1h)'
            in failing.output)

    only_ada = run(project, "validate", str(personas / "ada.yaml"))
    assert only_ada.exit_code == 0


def test_validate_json(project: Path) -> None:
    (project / "personas" / "ada.yaml").write_text(MINIMAL + "colour: red\n", encoding="utf-8")
    result = run(project, "validate", "--json", str(project / "personas"),
                 str(project / "missing.yaml"))
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["files"] == 1
    fields = {(p["field"], p["line"], p["column"]) for p in report["problems"]}
    assert ("colour", 5, 1) in fields
    assert any(p["file"].endswith("missing.yaml") for p in report["problems"])


def test_validate_duplicate_ids_across_given_files(project: Path) -> None:
    a, b = project / "personas" / "a.yaml", project / "personas" / "b.yaml"
    a.write_text(MINIMAL, encoding="utf-8")
    b.write_text(MINIMAL, encoding="utf-8")
    result = run(project, "validate", str(a), str(b))
    assert result.exit_code == 1 and f"{b}:1:5: id: id 'ada' is already used" in result.output


def test_without_config_it_is_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.yaml"), "personas",
                                      "validate"])
    assert result.exit_code == 2 and "no such config file" in result.output
    assert "Traceback" not in result.output


def test_list_and_show(project: Path) -> None:
    (project / "personas" / "ada.yaml").write_text(
        MINIMAL + "triggers: {keywords: [hey ada]}\n", encoding="utf-8")
    (project / "personas" / "bad.yaml").write_text("id: [", encoding="utf-8")
    listed = run(project, "list", "--json")
    assert listed.exit_code == 0
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == "ada" and row["model"] == "openai/gpt-4o-mini"
    assert "keywords: hey ada" in row["triggers"]
    assert "bad.yaml" in listed.stderr

    shown = run(project, "show", "Ada", "--user", "Bo")  # the name, as chat takes it
    assert shown.exit_code == 0, shown.output
    # in the persona file's own words, defaults applied (this one from persona_defaults)
    assert "  reply_deadline: 30s\n" in shown.stdout and "_s:" not in shown.stdout
    assert "You are Ada, talking with Bo." in shown.stdout

    missing = run(project, "show", "nobody")
    assert missing.exit_code == 1 and "no valid persona 'nobody'" in missing.output
    assert "(known: ada)" in missing.output and ":1:1" not in missing.output


def test_new_creates_a_valid_commented_file(project: Path) -> None:
    created = run(project, "new", "helper", "--name", "Helper Bot")
    assert created.exit_code == 0, created.output
    path = project / "personas" / "helper.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=./persona.schema.json\n")
    assert 'name: "Helper Bot"' in text
    assert run(project, "validate").exit_code == 0
    assert run(project, "show", "helper").exit_code == 0

    again = run(project, "new", "helper")
    assert again.exit_code == 2 and "already exists" in again.output
    assert path.read_text(encoding="utf-8") == text
    bad_id = run(project, "new", "Bad Id")
    assert bad_id.exit_code == 2 and "not a valid id" in bad_id.output


def test_validate_warns_about_an_nsfw_persona_asking_for_dms_config_does_not_allow(
        project: Path) -> None:
    (project / "personas" / "ada.yaml").write_text(
        MINIMAL + "nsfw: true\ntriggers: {dm: true}\n", encoding="utf-8")
    refused = run(project, "validate")
    assert refused.exit_code == 0  # a warning, not an error
    assert "triggers.dm: the persona is nsfw and config.yaml does not allow nsfw personas " \
           "in DMs" in " ".join(refused.output.split())
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "dms: {allow_nsfw: true}\n",
                      encoding="utf-8")
    allowed = run(project, "validate")
    assert allowed.exit_code == 0 and "nsfw" not in allowed.output
