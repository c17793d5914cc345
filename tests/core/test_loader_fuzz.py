"""Property-based fuzz of the config and persona loaders: whatever the YAML text, the only
exception is the located error type, and every problem has a file, a line and a message.

Texts come from three strategies: documents generated node by node (random nesting,
every kind of scalar, tags, anchors, aliases, merge keys, odd keys), the shipped
example files with generated values put in place of their own, and the example
files mutated character by character. Bounded: a few hundred examples, a few seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import load_config
from core.personas.loader import load_persona_text
from core.problems import ProblemsError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PERSONAS = sorted((ROOT / "personas").glob("*.yaml"))
EXAMPLE_CONFIG = ROOT / "config.yaml"
PROVIDERS = frozenset({"openai", "offline"})
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- generated YAML ----------------------------------------------------------------------------

SCALARS = st.one_of(
    st.sampled_from([
        "hello", "''", '""', "~", "null", "true", "no", "on", "=", "<<", "0x1F", "0o17", "1_000",
        "1:30", "-0", "3.14", "1e3", "1e999", ".nan", ".NaN", ".inf", "-.inf", "2024-01-01",
        "2001-12-14t21:59:43.10-05:00", "2024-01-01 10:30:00", "9" * 30, "9" * 5000,
        "'quoted: text'", '"esc \\x07 \\u00e9 \\ud800"', '"\\0"', "{persona}", "{unknown}",
        "'^(a+)+$'", "'(a)\\1'", "'(?=x)'", "'[a-'", "60s", "99999999999d", "-5", "0s",
        "'0 0 31 2 *'", "'61 * * * *'", "'0 0 * * *'", "Europe/Paris", "Nowhere/City",
        "http://x", "|\n    block\n    text", ">\n    folded", "é", "'\t'",
    ]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
            max_size=12).map(json.dumps),
)
TAGS = st.sampled_from([
    "", "", "", "", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ",
    "!!timestamp ", "!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ",
    "!!python/name:os.system ", "!!python/object/apply:os.system ", "!custom ", "!<tag:x> ",
])
KEYS = st.one_of(
    st.sampled_from(["id", "name", "model", "prompt", "system", "limits", "rate", "per",
                     "quota", "reset", "lorebook", "entries", "keys", "regex", "triggers",
                     "patterns", "extensions", "database", "path", "providers", "timeout",
                     "persona_defaults", "discord", "catch_up_window", "<<", "1", "null",
                     "true", "2024-01-01", "? [1, 2]", "? {a: 1}", "!!binary aGk=", "''"]),
    st.text(alphabet="abcxyz_", min_size=1, max_size=6),
)


class Renderer:
    """Turns a drawn tree into flow-style YAML, adding anchors and aliases as drawn."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.anchors: list[str] = []
        self.open: list[str] = []

    def node(self, depth: int) -> str:
        draw = self.data.draw
        choice = draw(st.integers(0, 9)) if depth < 6 else 0
        if self.anchors and draw(st.integers(0, 7)) == 0:
            # an alias: to a closed anchor, or now and then to one still open (recursive)
            pool = self.anchors + (self.open if draw(st.booleans()) else [])
            return "*" + draw(st.sampled_from(pool))
        anchor = ""
        if draw(st.integers(0, 5)) == 0:
            name = f"a{len(self.anchors) + len(self.open)}"
            anchor = f"&{name} "
        tag = draw(TAGS)
        if choice < 5:
            text = f"{tag}{anchor}{draw(SCALARS)}"
            if anchor:
                self.anchors.append(anchor[1:-1])
            return text
        if anchor:
            self.open.append(anchor[1:-1])
        if choice < 7:
            items = [self.node(depth + 1) for _ in range(draw(st.integers(0, 4)))]
            text = f"{tag}{anchor}[{', '.join(items)}]"
        else:
            pairs = []
            for _ in range(draw(st.integers(0, 4))):
                key = draw(KEYS)
                value = self.node(depth + 1)
                if key == "<<" and draw(st.booleans()) and self.anchors:
                    value = "*" + draw(st.sampled_from(self.anchors))
                pairs.append(f"{key}: {value}" if not key.startswith("?") else f"{key} : {value}")
            text = f"{tag}{anchor}{{{', '.join(pairs)}}}"
        if anchor:
            self.open.remove(anchor[1:-1])
            self.anchors.append(anchor[1:-1])
        return text


@st.composite
def generated_documents(draw: st.DrawFn) -> str:
    renderer = Renderer(draw(st.data()))
    lines = [f"{draw(KEYS)}: {renderer.node(1)}" for _ in range(draw(st.integers(1, 6)))]
    return "\n".join(line for line in lines if not line.startswith("?")) + "\n"


def _replace_somewhere(value: Any, replacement: str, path: list[int]) -> Any:
    """``value`` (plain data) with one subtree, chosen by ``path``, marked for replacement."""
    if not path or not isinstance(value, dict | list) or not value:
        return _Raw(replacement)
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    index = path[0] % len(items)
    key, child = items[index]
    changed = _replace_somewhere(child, replacement, path[1:])
    if isinstance(value, dict):
        return {**value, key: changed}
    return [changed if i == index else v for i, v in enumerate(value)]


class _Raw(str):
    """YAML text put in a document as is."""


def _flow(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return json.dumps(value)


def _examples(paths: list[Path]) -> list[dict]:
    from core.yamldoc import load_yaml

    return [load_yaml(path.read_text(encoding="utf-8"), str(path)).data for path in paths]


@st.composite
def examples_with_generated_values(draw: st.DrawFn, documents: list[dict]) -> str:
    document = draw(st.sampled_from(documents))
    renderer = Renderer(draw(st.data()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.lists(st.integers(0, 50), min_size=1, max_size=5))
        document = _replace_somewhere(document, renderer.node(2), path)
    return "\n".join(f"{json.dumps(key)}: {_flow(value)}" for key, value in document.items())


SNIPPETS = ["&a ", "*a", "&b [*a, *a]", "!!binary ", "!!python/name:os.system ", "<<: 5",
            "<<: *a", "{", "}", "[", "]", ": ", "- ", "? ", "\t", "\x00", "\x07", "\ufeff",
            "2024-01-01", ".nan", ".inf", "9" * 25, "'", '"', "|", ">", "#", "%YAML 1.1\n",
            "---\n", "...\n", "\n  ", "~", "=", "\ud800"]


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        operation = draw(st.integers(0, 3))
        if operation == 0:
            text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
        elif operation == 1:
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif operation == 2:
            text = text[:at] + draw(st.text(max_size=5)) + text[at:]
        else:
            lines = text.split("\n")
            line = draw(st.integers(0, len(lines) - 1))
            lines.insert(line, lines[line])
            text = "\n".join(lines)
    return text


PERSONA_TEXTS = [path.read_text(encoding="utf-8") for path in EXAMPLE_PERSONAS]
PERSONA_DATA = _examples(EXAMPLE_PERSONAS)
CONFIG_TEXT = EXAMPLE_CONFIG.read_text(encoding="utf-8")
CONFIG_DATA = _examples([EXAMPLE_CONFIG])

# -- the properties ----------------------------------------------------------------------------


def assert_located(error: ProblemsError, *, file: str | None = None) -> None:
    assert error.problems, "a ProblemsError without problems"
    for problem in error.problems:
        assert problem.file and problem.line >= 1 and problem.column >= 1, problem
        assert problem.message, problem
        if file is not None:
            assert problem.file == file or problem.file.endswith("config.yaml"), problem


def load_persona(text: str) -> None:
    try:
        load_persona_text(text, file="p.yaml", defaults={"model": {"provider": "openai",
                                                                   "name": "m"}},
                          known_providers=PROVIDERS)
    except ProblemsError as exc:
        assert_located(exc, file="p.yaml")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def load_config_text(folder: Path, text: str) -> None:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ProblemsError as exc:
        assert_located(exc, file=str(path))


@FUZZ
@given(generated_documents())
def test_persona_loader_on_generated_documents(text: str) -> None:
    load_persona(text)


@FUZZ
@given(examples_with_generated_values(PERSONA_DATA))
def test_persona_loader_on_examples_with_generated_values(text: str) -> None:
    load_persona(text)


@FUZZ
@given(mutated(PERSONA_TEXTS))
def test_persona_loader_on_mutated_examples(text: str) -> None:
    load_persona(text)


@FUZZ
@given(text=generated_documents())
def test_config_loader_on_generated_documents(folder: Path, text: str) -> None:
    load_config_text(folder, text)


@FUZZ
@given(text=examples_with_generated_values(CONFIG_DATA))
def test_config_loader_on_the_example_with_generated_values(folder: Path, text: str) -> None:
    load_config_text(folder, text)


@FUZZ
@given(text=mutated([CONFIG_TEXT]))
def test_config_loader_on_the_mutated_example(folder: Path, text: str) -> None:
    load_config_text(folder, text)


def test_the_example_files_load() -> None:
    """The fuzz starts from files that load: a broken example would hide everything."""
    for text, path in zip(PERSONA_TEXTS, EXAMPLE_PERSONAS, strict=True):
        load_persona_text(text, file=str(path), defaults={"model": {"provider": "openai",
                                                                    "name": "m"}},
                          known_providers=PROVIDERS)
    load_config(EXAMPLE_CONFIG)
