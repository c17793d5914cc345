"""The tools a persona file declares: checked at load with file and line, built-ins and
installed tools (entry points) found, warnings for tools a provider will not be offered,
and the operator's attachment caps in config.yaml."""

from __future__ import annotations

import json
import random
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from core.config import load_config
from core.credentials import Secrets
from core.gateway.model import ToolCall
from core.personas.loader import load_persona_text
from core.problems import ProblemsError
from core.tools.toolbox import Toolbox

BASE = "id: ada\nname: Ada\nmodel: {provider: offline, name: m}\nprompt: {system: hi}\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        load_persona_text(BASE + text, file="ada.yaml", defaults={}, known_providers={"offline"})
    return [str(p) for p in caught.value.problems]


def test_bad_tools_are_reported_at_their_lines() -> None:
    problems = _problems(textwrap.dedent("""\
        tools:
          max_steps: 0
          entries:
            - roll
            - telepathy
            - roll
            - name: weather
              description: The weather.
              parameters:
                type: object
                properties: {city: {type: strng}}
              http:
                url: "https://{city}.example.org/w/{town}"
                headers: {Authorization: "Bearer ${NOT-A-NAME}"}
            - name: leak
              description: Puts a secret in the URL.
              http: {url: "https://api.example.org/?key=${API_KEY}"}
        """))
    assert problems == [
        "ada.yaml:6:14: tools.max_steps: 0 is too small (at least 1)",
        "ada.yaml:9:7: tools.entries[1]: no tool named 'telepathy' (built in or installed: "
        "roll, now, lore; an HTTP tool is a mapping with name, description, parameters and "
        "http)",
        "ada.yaml:10:7: tools.entries[2]: the tool 'roll' is listed twice (first as entry 1)",
        "ada.yaml:15:35: tools.entries[3].parameters.properties.city.type: not a valid JSON "
        "Schema: 'strng' is not valid under any of the given schemas",
        "ada.yaml:17:14: tools.entries[3].http.url: the URL uses {town}, which is not an "
        "argument in parameters (declared: city)",
        "ada.yaml:17:14: tools.entries[3].http.url: the scheme and host of the URL must be "
        "fixed: placeholders may only come after the host",
        "ada.yaml:18:34: tools.entries[3].http.headers.Authorization: ${NOT-A-NAME} does not "
        "name an environment variable (letters, digits and _; the secret itself never goes in "
        "this file)",
        "ada.yaml:21:19: tools.entries[4].http.url: secrets go in headers (${NAME}), never in "
        "the URL: URLs end up in logs",
    ]


def test_persona_fields_for_media_are_checked_by_the_schema() -> None:
    assert _problems("reasoning: loud\n") == [
        'ada.yaml:5:12: reasoning: "loud" is not one of: hide, spoiler, attach']
    assert _problems("context: {max_images: -1}\n") == [
        "ada.yaml:5:23: context.max_images: -1 is too small (at least 0)"]


@pytest.fixture
def installed_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package installed on sys.path that ships a tool under ``personae.tools``."""
    (tmp_path / "shouting.py").write_text(textwrap.dedent("""\
        class Shout:
            description = "Shout a word."
            parameters = {"type": "object", "properties": {"word": {"type": "string"}},
                          "required": ["word"]}

            async def run(self, arguments, context):
                return arguments["word"].upper() + "!"
        """))
    info = tmp_path / "shouting-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shouting\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[personae.tools]\nshout = shouting:Shout\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "shout"
    sys.modules.pop("shouting", None)


async def test_an_installed_tool_is_found_and_called(installed_tool: str) -> None:
    ada = load_persona_text(BASE + "tools: [shout, roll]\n", file="ada.yaml", defaults={},
                            known_providers={"offline"})
    toolbox = Toolbox(Secrets({}), rng=random.Random(1))
    assert [d.name for d in toolbox.definitions(ada)] == ["shout", "roll"]
    outcome = await toolbox.run(ada, ToolCall(id="1", name="shout",
                                              arguments='{"word": "hello"}'), 5)
    assert (outcome.ok, outcome.content) == (True, "HELLO!")
    bad = await toolbox.run(ada, ToolCall(id="2", name="shout", arguments='{"word": 3}'), 5)
    assert (bad.ok, bad.error) == (False, "invalid_arguments")
    assert bad.content == "error: invalid arguments at word: 3 is not of type 'string'"
    rolled = await toolbox.run(ada, ToolCall(id="3", name="roll",
                                             arguments='{"expression": "500d6"}'), 5)
    assert rolled.content == "error: 1 to 100 dice of 2 to 1000 sides"


def test_validate_warns_about_tools_a_provider_is_not_offered(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: local, name: tiny-7b}\nprompt: {system: hi}\n"
        "tools:\n  - roll\n  - name: w\n    description: d\n"
        "    http: {url: 'https://x.example/', headers: {A: '${MISSING_TOKEN}'}}\n")
    (tmp_path / "config.yaml").write_text(
        "personas: {dir: personas}\nproviders:\n"
        "  local: {base_url: 'http://127.0.0.1:9/v1', tools: [llama3*]}\n")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "personas",
                                      "validate", "--json"], env={"MISSING_TOKEN": ""})
    assert result.exit_code == 0, result.output
    warnings = [w["message"] for w in json.loads(result.stdout)["warnings"]]
    assert warnings == [
        "provider local is set not to take tools for model tiny-7b (providers.local.tools in "
        "config.yaml): the persona's tools will not be offered",
        "the tool w needs the environment variable MISSING_TOKEN, which is not set: its calls "
        "will fail until it is"]


def test_attachment_caps_in_config_yaml(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("attachments:\n  max_file_size: 2MiB\n  max_message_size: 5 MB\n"
                      "  max_files: 3\n  hosts: [cdn.example.test]\n")
    loaded = load_config(config).attachments
    assert (loaded.max_file_bytes, loaded.max_message_bytes, loaded.max_files,
            loaded.hosts) == (2 * 1024 * 1024, 5_000_000, 3, frozenset({"cdn.example.test"}))
    config.write_text("attachments:\n  max_file_size: 8 parsecs\n  max_files: -1\n")
    with pytest.raises(ProblemsError) as caught:
        load_config(config)
    assert [str(p) for p in caught.value.problems] == [
        f'{config}:2:18: attachments.max_file_size: "8 parsecs" is not a size (a number of '
        "bytes, or 512KB, 8MB, 1GiB)",
        f"{config}:3:14: attachments.max_files: -1 is too small (at least 0)"]
