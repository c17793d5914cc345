"""Persona YAML files -> :class:`~core.personas.model.Persona`, or every problem at once.

A file is merged over ``persona_defaults`` (the persona overrides only what it sets;
lists replace, mappings merge), and the MERGED document is checked twice: against
``persona.schema.json``, then by the rules a schema cannot express (regexes compile
for RE2 within their size, cron schedules fire, time zones exist, providers are known,
limits are possible, templates name known variables). Each problem is located in the
persona's file, or in config.yaml when the bad value is an inherited default.

Valid files are the common case and need no positions, so a file is first parsed
and checked the quick way; only a file with a problem is parsed again with positions
to locate and explain every problem.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import jsonschema
from apscheduler.triggers.cron import CronTrigger

from ..config import threshold_level, thresholds_problem
from ..durations import DAY, HOUR, parse_duration
from ..patterns import MAX_PERSONA_PROGRAM, PatternError, compile_regex
from ..problems import Problem, ProblemsError, at_most
from ..schemacheck import bundled_schema, fast_validator_for, schema_problems, validator_for
from ..yamldoc import FieldPath, YamlDocument, YamlLimits, load_yaml, quick_load, read_yaml_file
from .defaults import LocatedDefaults
from .includes import LOREBOOK_LIMITS, Includes, NoIncludes, includes_for
from .model import (
    AllowedMentions,
    ContextSpec,
    DeliverySpec,
    Example,
    FallbackModel,
    LimitsSpec,
    Lorebook,
    LoreEntry,
    ModelSpec,
    ModerationOverride,
    PermissionSpec,
    Persona,
    PromptSpec,
    QuotaSpec,
    RateLimitSpec,
    ThreadSpec,
    TriggerSpec,
)
from .prompt import template_errors
from .tools import tool_problems, tools_spec

PERSONA_SUFFIXES = (".yaml", ".yml")
SCHEMA_FILE = "persona.schema.json"
log = logging.getLogger(__name__)
PERSONA_LIMITS = YamlLimits(max_bytes=4 * 1024 * 1024, max_nodes=200_000, max_depth=64)
"""A persona file: 4 MiB (big character cards are a few MiB of text), 200,000 values
(a lorebook of thousands of entries), 64 levels of nesting."""


@dataclass(frozen=True)
class PersonaSet:
    """The personas that loaded from a set of files, and the problems of those that did not.

    ``failed_files`` holds the resolved paths of files left out because of a problem,
    so that a registry can keep serving their last good version.
    """

    personas: Mapping[str, Persona]
    problems: tuple[Problem, ...] = ()
    failed_files: frozenset[Path] = field(default_factory=frozenset)


def persona_schema() -> Mapping[str, Any]:
    """The persona JSON Schema (the copy in ``personas/`` is for editors)."""
    return bundled_schema("core.personas", SCHEMA_FILE)


def persona_schema_text() -> str:
    """The schema file's text, to copy next to persona files for editors."""
    return resources.files("core.personas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def persona_files(directory: str | Path) -> list[Path]:
    """The persona files in ``directory``, sorted; hidden files (editor locks) are skipped."""
    return sorted(
        p for p in Path(directory).iterdir()
        if p.suffix in PERSONA_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_persona_file(
    path: str | Path, *, defaults: Mapping[str, Any], known_providers: Collection[str]
) -> Persona:
    """Load one persona file. Raises :class:`ProblemsError` with every problem in it."""
    path = Path(path)
    return _load(_read(path), str(path), path.resolve(), defaults, known_providers,
                 includes_for(path))


def load_persona_text(
    text: str,
    *,
    file: str,
    defaults: Mapping[str, Any],
    known_providers: Collection[str],
    path: Path | None = None,
    includes: Includes | None = None,
) -> Persona:
    """Load a persona from its source ``text`` (named ``file`` in problems); the lorebook
    files it includes come from ``includes`` (default: none)."""
    resolved = path.resolve() if path is not None else None
    return _load(text, file, resolved, defaults, known_providers, includes or NoIncludes())


class LoadCache:
    """Earlier load results by file, so that reloading a directory parses only the
    files whose text changed. Use one cache per ``defaults`` and ``known_providers``."""

    def __init__(self) -> None:
        self._results: dict[Path, tuple[str, dict[str, str | None], Persona | ProblemsError]] = {}

    def load(self, path: Path, resolved: Path, text: str, defaults: Mapping[str, Any],
             known_providers: Collection[str]) -> Persona:
        """The result for ``path`` (``resolved``) holding ``text`` (and the lorebook files
        it includes holding what they held): remembered, or loaded now."""
        cached = self._results.get(resolved)
        if cached is None or cached[0] != text or not includes_for(path).unchanged(cached[1]):
            includes = includes_for(path)
            try:
                result: Persona | ProblemsError = _load(
                    text, str(path), resolved, defaults, known_providers, includes)
            except ProblemsError as exc:
                result = exc
            except Exception as exc:
                # A bug, not the file's fault: still only this file is left out, and the
                # others load (a reload never fails as a whole).
                log.exception("loading %s failed", path)
                result = ProblemsError([Problem(
                    str(path), 1, 1, "", f"this file could not be loaded ({type(exc).__name__}; "
                    "a bug in personae, please report it with the file)")])
            cached = self._results[resolved] = (text, dict(includes.read_texts), result)
        if isinstance(cached[2], ProblemsError):
            raise cached[2]
        return cached[2]

    def forget_all_but(self, resolved_paths: Collection[Path]) -> None:
        """Drop the results of files that are gone."""
        keep = set(resolved_paths)
        for path in [p for p in self._results if p not in keep]:
            del self._results[path]


def load_persona_files(
    paths: Iterable[str | Path],
    *,
    defaults: Mapping[str, Any],
    known_providers: Collection[str],
    cache: LoadCache | None = None,
) -> PersonaSet:
    """Load several files; a broken file is reported and left out, and so is a file whose
    id an earlier file (in path order) already uses."""
    personas: dict[str, Persona] = {}
    owners: dict[str, str] = {}
    problems: list[Problem] = []
    failed: set[Path] = set()
    cache = cache if cache is not None else LoadCache()
    ordered = [(path, path.resolve()) for path in sorted(Path(p) for p in paths)]
    cache.forget_all_but([resolved for _, resolved in ordered])
    for path, resolved in ordered:
        try:
            persona = cache.load(path, resolved, _read(path), defaults, known_providers)
        except ProblemsError as exc:
            problems.extend(exc.problems)
            failed.add(resolved)
            continue
        if persona.id in personas:
            document = load_yaml(persona.source_text, str(path), PERSONA_LIMITS)  # parsed before
            problems.append(document.problem(
                ("id",), f"id '{persona.id}' is already used by {owners[persona.id]} "
                "(ids must be unique; this file is ignored)",
            ))
            failed.add(resolved)
            continue
        personas[persona.id] = persona
        owners[persona.id] = str(path)
    return PersonaSet(personas, tuple(dict.fromkeys(problems)), frozenset(failed))


def load_personas(
    directory: str | Path,
    *,
    defaults: Mapping[str, Any],
    known_providers: Collection[str],
    cache: LoadCache | None = None,
) -> PersonaSet:
    """Load every persona file in ``directory`` (see :func:`load_persona_files`)."""
    try:
        files = persona_files(directory)
    except OSError as exc:
        reason = "no such directory" if isinstance(exc, FileNotFoundError) else str(exc)
        problem = Problem(str(directory), 1, 1, "", f"cannot read the personas directory: {reason}")
        return PersonaSet({}, (problem,))
    return load_persona_files(files, defaults=defaults, known_providers=known_providers,
                              cache=cache)


def persona_version(source_text: str, defaults: Mapping[str, Any],
                    included: Mapping[str, str] | None = None) -> str:
    """The content hash of a persona: its source text, the defaults merged under it and
    the lorebook files it includes."""
    digest = hashlib.sha256(source_text.encode("utf-8"))
    digest.update(b"\0")
    digest.update(_canonical_json(defaults).encode("utf-8"))
    if included:  # a persona without includes keeps the version it always had
        digest.update(b"\0")
        digest.update(_canonical_json(dict(included)).encode("utf-8"))
    return digest.hexdigest()[:16]


# -- loading one document ------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return read_yaml_file(path, PERSONA_LIMITS)
    except FileNotFoundError:
        raise ProblemsError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except OSError as exc:
        raise ProblemsError([Problem(str(path), 1, 1, "", f"cannot read the file: {exc}")]) from None


def _load(
    text: str, file: str, path: Path | None, defaults: Mapping[str, Any],
    known_providers: Collection[str], includes: Includes,
) -> Persona:
    """Most files are valid, and a valid file needs no positions: try the quick way
    first, and take the located way (which explains every problem) on any doubt."""
    plain_defaults = _plain(defaults)
    data = quick_load(text, file, PERSONA_LIMITS)
    if isinstance(data, dict):
        merged = _deep_merge(plain_defaults, data)
        if _passes_fast_schema(merged) and not _rule_problems(_Unlocated(merged), known_providers):
            try:
                included = _included(_Unlocated(merged), includes)
            except ProblemsError:
                pass  # the located way says where
            else:
                return _build(merged, text, path, plain_defaults, included)
    return _load_located(text, file, path, defaults, known_providers, includes)


def _load_located(
    text: str, file: str, path: Path | None, defaults: Mapping[str, Any],
    known_providers: Collection[str], includes: Includes | None = None,
) -> Persona:
    document = load_yaml(text, file, PERSONA_LIMITS)
    if document.data is None:
        raise ProblemsError([Problem(
            file, 1, 1, "", "the file is empty: a persona needs at least id, name and prompt.system",
        )])
    if not isinstance(document.data, dict):
        raise ProblemsError([document.problem((), "a persona file must be a mapping of fields")])
    plain_defaults = _plain(defaults)
    located = defaults if isinstance(defaults, LocatedDefaults) else LocatedDefaults(plain_defaults)
    merged = _MergedDocument(
        file, _deep_merge(plain_defaults, document.data), document.value_positions,
        document.key_positions, persona=document, defaults=located, source=text,
    )
    problems = _schema_problems(merged)
    blamed = {p.field for p in problems}
    problems += [p for p in _rule_problems(merged, known_providers) if p.field not in blamed]
    if problems:
        problems.sort(key=lambda p: (p.file != file, p.line, p.column, p.field))
        raise ProblemsError(at_most(problems))
    return _build(merged.data, text, path, plain_defaults,
                  _included(merged, includes or NoIncludes()))


def _included(doc: _Locator, includes: Includes) -> dict[str, tuple[str, list[dict]]]:
    """The lorebook files the persona includes: name -> (text, entries). Raises
    ProblemsError, each problem located where it is (a missing file at the include)."""
    lorebook = _get(doc.data, "lorebook")
    names = _list(_get(lorebook, "include"))
    found: dict[str, tuple[str, list[dict]]] = {}
    problems: list[Problem] = []
    total = sum(compile_regex(p, case_sensitive=c).program_size for _, p, c in _regexes(doc.data))
    for i, name in enumerate(names):
        if not isinstance(name, str) or name in found:
            continue
        try:
            read = includes.read(name)
        except ProblemsError as exc:
            problems += exc.problems
            continue
        if read is None:
            problems.append(doc.problem(("lorebook", "include", i), (
                f"no lorebook file {name!r}: expected {includes.where(name)} "
                "(`personae personas import` makes one from a World Info file)")))
            continue
        label, text = read
        try:
            entries = _load_lorebook(label, text)
        except ProblemsError as exc:
            problems += exc.problems
            continue
        total += sum(compile_regex(p, case_sensitive=c).program_size
                     for _, p, c in _regexes({"lorebook": entries}))
        if total > MAX_PERSONA_PROGRAM:
            problems.append(doc.problem(("lorebook", "include", i), (
                f"the lorebook {name!r} brings this persona's regular expressions to {total:,} "
                f"RE2 instructions, more than the {MAX_PERSONA_PROGRAM:,} allowed together")))
            continue
        found[name] = (text, entries)
    if problems:
        raise ProblemsError(at_most(problems))
    return found


def load_lorebook_text(text: str, *, file: str) -> list[dict]:
    """The entries of a lorebook file's ``text`` (see :mod:`core.personas.includes`);
    raises ProblemsError with every problem in it, located in it (named ``file``)."""
    return _load_lorebook(file, text)


def _load_lorebook(file: str, text: str) -> list[dict]:
    data = quick_load(text, file, LOREBOOK_LIMITS)
    if isinstance(data, dict) and _passes(_fast_lorebook_validator(), data) and not \
            _lorebook_rules(_Unlocated({"lorebook": data.get("entries")})):
        return list(data["entries"])
    document = load_yaml(text, file, LOREBOOK_LIMITS)
    if not isinstance(document.data, dict):
        raise ProblemsError([document.problem((), (
            "a lorebook file is a mapping with entries (and optionally name and description)"))])
    problems = schema_problems(document, _lorebook_validator())
    blamed = {p.field for p in problems}
    problems += [p for p in _lorebook_rules(_Rerooted(document, text)) if p.field not in blamed]
    if problems:
        problems.sort(key=lambda p: (p.line, p.column, p.field))
        raise ProblemsError(at_most(problems))
    return list(document.data["entries"])


def _lorebook_rules(doc: _Locator) -> list[Problem]:
    lorebook = _get(doc.data, "lorebook")
    return (_regex_problems(doc, doc.data) + _lorebook_problems(doc, lorebook)
            + _lore_template_problems(doc, lorebook))


def _lorebook_file_schema() -> dict[str, Any]:
    schema = persona_schema()
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "type": "object",
            "additionalProperties": False, "required": ["entries"],
            "properties": {
                "name": {"type": "string"}, "description": {"type": "string"},
                "entries": {"type": "array", "maxItems": 5000,
                            "items": {"$ref": "#/$defs/lore_entry"}}}}


@cache
def _lorebook_validator() -> jsonschema.protocols.Validator:
    return validator_for(_lorebook_file_schema())


@cache
def _fast_lorebook_validator() -> Callable[[Any], Any]:
    return fast_validator_for(_lorebook_file_schema())


def _passes(validator: Callable[[Any], Any], data: Any) -> bool:
    try:
        validator(data)
    except Exception:  # any doubt goes to the thorough validator
        return False
    return True


class _Rerooted:
    """A lorebook file seen as a persona's ``lorebook`` (the shape the rules read)."""

    def __init__(self, document: YamlDocument, source: str) -> None:
        self._document = document
        self._lines = source.split("\n")
        self.data = {"lorebook": _get(document.data, "entries")}

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        return self._document.problem(("entries", *tuple(path)[1:]), message, key=key)

    def problem_in_text(self, path: FieldPath, value: str, offset: int, token: str,
                        message: str) -> Problem:
        problem = self.problem(path, message)
        where = _token_position(self._lines, problem.line, problem.column, value, offset, token)
        if where is None:
            return problem
        return Problem(problem.file, where[0], where[1], problem.field, message)


def _schema_problems(document: YamlDocument) -> list[Problem]:
    if _passes_fast_schema(document.data):
        return []
    return schema_problems(document, _validator())


def _passes_fast_schema(data: Any) -> bool:
    # A compiled check clears a valid file ~20x faster than jsonschema, which then only
    # runs to locate and explain the problems of a file that fails it.
    try:
        _fast_validator()(data)
    except Exception:  # any doubt goes to the thorough validator
        return False
    return True


class _Locator(Protocol):
    """What the rules need: the merged data, and a way to say where a problem is."""

    @property
    def data(self) -> Any: ...

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False
                ) -> Problem: ...

    def problem_in_text(self, path: FieldPath, value: str, offset: int, token: str,
                        message: str) -> Problem: ...


class _Unlocated:
    """Stands in for a located document when only "any problem?" matters."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        return Problem("", 0, 0, "", message)

    def problem_in_text(self, path: FieldPath, value: str, offset: int, token: str,
                        message: str) -> Problem:
        return Problem("", 0, 0, "", message)


@cache
def _validator() -> jsonschema.protocols.Validator:
    return validator_for(persona_schema())


@cache
def _fast_validator() -> Callable[[Any], Any]:
    return fast_validator_for(persona_schema())


@dataclass(frozen=True)
class _MergedDocument(YamlDocument):
    """The merged persona; each problem is blamed on the file that wrote the value."""

    persona: YamlDocument = field(repr=False, kw_only=True)
    defaults: LocatedDefaults = field(repr=False, kw_only=True)
    source: str = field(repr=False, kw_only=True)

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        path = tuple(path)
        if _depth(self.defaults.data, path) > _depth(self.persona.data, path):
            return self.defaults.problem(path, message, key=key)
        return self.persona.problem(path, message, key=key)

    @cached_property
    def source_lines(self) -> list[str]:
        """The persona file's lines (split once, whatever the number of problems)."""
        return self.source.split("\n")

    def problem_in_text(self, path: FieldPath, value: str, offset: int, token: str,
                        message: str) -> Problem:
        """A problem with ``token`` at ``offset`` in the text value at ``path``, located at
        the token itself when the source shows where, else at the value."""
        problem = self.problem(path, message)
        if problem.file != self.persona.file:
            return problem
        where = _token_position(self.source_lines, problem.line, problem.column, value, offset,
                                token)
        if where is None:
            return problem
        return Problem(problem.file, where[0], where[1], problem.field, message)


def _token_position(lines: Sequence[str], line: int, column: int, value: str, offset: int,
                    token: str) -> tuple[int, int] | None:
    """Where ``token`` (at ``offset`` in ``value``) is in the source ``lines``, for a value
    that starts at ``line``:``column``; None when the layout cannot tell (escapes)."""
    if not 1 <= line <= len(lines):
        return None
    start = lines[line - 1][column - 1:column]
    if start in ("|", ">"):
        # Block scalars keep every non-space character in order, folded or not: the
        # token is the same occurrence in the block's lines as in the value.
        return _nth_in_block(lines, line, token, value.count(token, 0, offset))
    if "\n" in value[:offset]:
        return None
    row, col = line, column + offset + (1 if start in ("'", '"') else 0)
    if lines[row - 1][col - 1:col - 1 + len(token)] != token:
        return None  # an escape sequence shifted the text
    return row, col


def _nth_in_block(lines: Sequence[str], line: int, token: str, nth: int
                  ) -> tuple[int, int] | None:
    content = next((text for text in lines[line:] if text.strip()), "")
    indent = len(content) - len(content.lstrip(" "))
    for row in range(line + 1, len(lines) + 1):
        text = lines[row - 1]
        if text.strip() and len(text) - len(text.lstrip(" ")) < indent:
            return None
        index = text.find(token)
        while index != -1:
            if nth == 0:
                return row, index + 1
            nth -= 1
            index = text.find(token, index + len(token))
    return None


def _depth(data: Any, path: FieldPath) -> int:
    """How many leading parts of ``path`` exist in ``data``."""
    for depth, part in enumerate(path):
        in_mapping = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            return depth
        data = data[part]
    return len(path)


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base[key], value) if key in base else value
        return merged
    return override


def _plain(value: Any) -> Any:
    """A JSON-shaped copy (what an event can store and a hash can digest)."""
    return json.loads(_canonical_json(value))


def _canonical_json(value: Any) -> str:
    if isinstance(value, LocatedDefaults):
        value = value.data
    return json.dumps(_text_keys(value), sort_keys=True, ensure_ascii=False,
                      default=_json_default)


def _text_keys(value: Any) -> Any:
    """``value`` with every mapping key as JSON writes it (``50256`` -> ``"50256"``), so
    that keys of several kinds in one mapping can be sorted."""
    if isinstance(value, Mapping):
        return {_json_key(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text_keys(v) for v in value]
    return value


def _json_key(key: Any) -> str:
    return key if isinstance(key, str) else json.dumps(key) if key is None or isinstance(
        key, bool | int | float) else str(key)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


# -- rules the schema cannot express -------------------------------------------------


def _rule_problems(doc: _Locator, known_providers: Collection[str]) -> list[Problem]:
    data = doc.data
    problems: list[Problem] = []
    problems += _provider_problems(doc, _get(data, "model"), known_providers)
    problems += _template_problems(doc, _get(data, "prompt"))
    problems += _regex_problems(doc, data)
    problems += _limit_problems(doc, _get(data, "limits"), _get(_get(data, "model"), "max_tokens"))
    problems += _lorebook_problems(doc, _get(data, "lorebook"))
    problems += tool_problems(doc, _get(data, "tools"))
    problems += _lore_template_problems(doc, _get(data, "lorebook"))
    problems += _moderation_problems(doc, _get(data, "moderation"))
    return problems


def _moderation_problems(doc: _Locator, moderation: Any) -> list[Problem]:
    thresholds = _get(moderation, "thresholds")
    if not isinstance(thresholds, dict):
        return []
    return [doc.problem(("moderation", "thresholds", name), problem)
            for name, pair in thresholds.items()
            if isinstance(pair, dict) and (problem := thresholds_problem(pair)) is not None]


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _provider_problems(
    doc: _Locator, model: Any, known_providers: Collection[str]
) -> list[Problem]:
    problems = []
    for path, spec in ((("model", "provider"), model), (("model", "fallback", "provider"),
                                                        _get(model, "fallback"))):
        provider = _get(spec, "provider")
        if isinstance(provider, str) and provider and provider not in known_providers:
            message = f"unknown provider \"{provider}\""
            if close := difflib.get_close_matches(provider, list(known_providers), n=1):
                message += f" (did you mean \"{close[0]}\"?)"
            known = ", ".join(sorted(known_providers))
            message += f"; known providers: {known} (add it under providers: in config.yaml)"
            problems.append(doc.problem(path, message))
    return problems


def _lore_template_problems(doc: _Locator, lorebook: Any) -> list[Problem]:
    base: FieldPath = ("lorebook",) if isinstance(lorebook, list) else ("lorebook", "entries")
    entries = lorebook if isinstance(lorebook, list) else _list(_get(lorebook, "entries"))
    return _texts_problems(doc, [((*base, i, "content"), _get(entry, "content"))
                                 for i, entry in enumerate(entries)])


def _template_problems(doc: _Locator, prompt: Any) -> list[Problem]:
    texts: list[tuple[FieldPath, Any]] = [
        (("prompt", "system"), _get(prompt, "system")),
        (("prompt", "post_history"), _get(prompt, "post_history")),
        (("prompt", "greeting"), _get(prompt, "greeting")),
    ]
    texts += [(("prompt", "alternate_greetings", i), text)
              for i, text in enumerate(_list(_get(prompt, "alternate_greetings")))]
    for i, example in enumerate(_list(_get(prompt, "examples"))):
        texts += [(("prompt", "examples", i, side), _get(example, side))
                  for side in ("user", "assistant")]
    return _texts_problems(doc, texts)


def _texts_problems(doc: _Locator, texts: Sequence[tuple[FieldPath, Any]]) -> list[Problem]:
    problems = []
    for path, text in texts:
        mistakes = template_errors(text) if isinstance(text, str) else []
        # Each is located in the source (a scan of the text): a few per text say enough.
        shown = [doc.problem_in_text(path, text, m.offset, m.token, m.message)
                 for m in mistakes[:_MISTAKES_SHOWN]]
        problems += shown
        if len(mistakes) > _MISTAKES_SHOWN:
            last = shown[-1]  # the summary sorts right after the mistakes shown
            problems.append(Problem(last.file, last.line, last.column, last.field, (
                f"and {len(mistakes) - _MISTAKES_SHOWN:,} more template mistakes in this text")))
    return problems


_MISTAKES_SHOWN = 10


def _regex_problems(doc: _Locator, data: Any) -> list[Problem]:
    """Every regular expression compiles for RE2 (linear-time matching) and all of them
    together stay within :data:`MAX_PERSONA_PROGRAM`, which bounds what one message
    can cost this persona."""
    problems: list[Problem] = []
    total = 0
    for path, pattern, case_sensitive in _regexes(data):
        try:
            total += compile_regex(pattern, case_sensitive=case_sensitive).program_size
        except PatternError as exc:
            problems.append(doc.problem(path, f"{_quoted(pattern)} {exc}"))
            continue
        if total > MAX_PERSONA_PROGRAM:
            problems.append(doc.problem(path, (
                f"{_quoted(pattern)} brings this persona's regular expressions to {total:,} "
                f"RE2 instructions, more than the {MAX_PERSONA_PROGRAM:,} allowed together: "
                "simplify them, or use plain keywords and keys")))
            break
    return problems


def _regexes(data: Any) -> Iterable[tuple[FieldPath, str, bool]]:
    """(where, pattern, case sensitive) of every regular expression in a persona."""
    triggers = _get(data, "triggers")
    sensitive = bool(_get(triggers, "case_sensitive"))
    for i, pattern in enumerate(_list(_get(triggers, "patterns"))):
        if isinstance(pattern, str):
            yield ("triggers", "patterns", i), pattern, sensitive
    lorebook = _get(data, "lorebook")
    base: FieldPath = ("lorebook",) if isinstance(lorebook, list) else ("lorebook", "entries")
    entries = lorebook if isinstance(lorebook, list) else _list(_get(lorebook, "entries"))
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("regex"):
            for kind in ("keys", "secondary_keys"):
                for j, key in enumerate(_list(entry.get(kind))):
                    if isinstance(key, str):
                        yield (*base, i, kind, j), key, bool(entry.get("case_sensitive"))


def _quoted(text: str) -> str:
    return json.dumps(text if len(text) <= 60 else text[:57] + "...", ensure_ascii=False)


def _limit_problems(doc: _Locator, limits: Any, max_tokens: Any) -> list[Problem]:
    problems: list[Problem] = []
    rate = _get(limits, "rate")
    if isinstance(rate, dict):
        if "capacity" in rate and "messages" in rate:
            problems.append(doc.problem(("limits", "rate", "messages"),
                                        "set capacity or messages (they mean the same), not both",
                                        key=True))
        elif "capacity" not in rate and "messages" not in rate:
            problems.append(doc.problem(("limits", "rate"),
                                        "missing required key 'capacity' (messages per period)"))
        if _seconds(doc, ("limits", "rate", "per"), rate.get("per"), problems) == 0:
            problems.append(doc.problem(("limits", "rate", "per"),
                                        "must be longer than 0s (the time the bucket takes to refill)"))
    quota = _get(limits, "quota")
    if isinstance(quota, dict):
        problems += _quota_problems(doc, quota, max_tokens)
    path = ("limits", "reply_deadline")
    if _seconds(doc, path, _get(limits, "reply_deadline"), problems) == 0:
        problems.append(doc.problem(path, "must be longer than 0s, or no reply could ever finish"))
    return problems


def _quota_problems(doc: _Locator, quota: dict, max_tokens: Any) -> list[Problem]:
    problems: list[Problem] = []
    if quota.get("tokens") is None and quota.get("messages") is None:
        problems.append(doc.problem(("limits", "quota"),
                                    "set tokens, messages or both: an empty quota limits nothing"))
    tokens = quota.get("tokens")
    if (isinstance(tokens, int) and isinstance(max_tokens, int) and tokens >= 1
            and tokens < max_tokens):
        problems.append(doc.problem(
            ("limits", "quota", "tokens"),
            f"a quota of {tokens} tokens is smaller than model.max_tokens ({max_tokens}): "
            "not even one full reply would fit",
        ))
    timezone = quota.get("timezone", "UTC")
    if isinstance(timezone, str):
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(doc.problem(
                ("limits", "quota", "timezone"),
                f"unknown time zone {json.dumps(timezone)} (use an IANA name such as UTC or "
                "Europe/Paris)",
            ))
            timezone = "UTC"
    reset = quota.get("reset", "0 0 * * *")
    if isinstance(reset, str):
        error = _cron_problem(reset, timezone if isinstance(timezone, str) else "UTC")
        if error:
            problems.append(doc.problem(("limits", "quota", "reset"), error))
    return problems


_CYCLE = (2000, 2399)
"""A whole cycle of the Gregorian calendar (400 years: every date falls on every
weekday): a schedule that fires at all fires within it."""


@lru_cache(maxsize=256)
def _cron_problem(expression: str, timezone: str) -> str | None:
    """What is wrong with ``expression`` as a quota reset, or None (cached: a few
    distinct expressions repeat across hundreds of files)."""
    try:
        CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as exc:
        return (f"{json.dumps(expression)} is not a valid cron expression: {exc} (five fields: "
                "minute hour day month weekday, e.g. \"0 0 * * *\")")
    # Searching for a fire time that never comes takes APScheduler ~0.15 s (it gives
    # up in year 9999), on every refused message: bound the search to one cycle.
    minute, hour, day, month, weekday = expression.split()
    zone = zoneinfo.ZoneInfo(timezone)
    cycle = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday,
                        year=f"{_CYCLE[0]}-{_CYCLE[1]}", timezone=zone)
    if cycle.get_next_fire_time(None, datetime(_CYCLE[0], 1, 1, tzinfo=zone)) is None:
        return (f"{json.dumps(expression)}: this schedule never fires (no such date: "
                "check the day and month fields, e.g. day 31 of a 30-day month), so the "
                "quota would never reset")
    return None


# The longest each duration setting may be: a bucket refilled over more than a year,
# or a reply allowed more than an hour, cannot be what was meant.
_LONGEST: dict[FieldPath, float] = {("limits", "rate", "per"): 366 * DAY,
                                     ("limits", "reply_deadline"): HOUR}


def _seconds(doc: _Locator, path: FieldPath, value: Any, problems: list[Problem]
             ) -> float | None:
    """The duration at ``path`` in seconds, or None when it is missing or unusable
    (then with a problem in ``problems``)."""
    if value is None or not isinstance(value, str | int | float):
        return None  # the schema says what is wrong with it
    try:
        return parse_duration(value, maximum=_LONGEST[path])
    except ValueError as exc:
        problems.append(doc.problem(path, str(exc)))
        return None


_SHARE = re.compile(r"^\s*([0-9]{1,3}(?:\.[0-9]+)?)\s*%\s*$")


def _lorebook_problems(doc: _Locator, lorebook: Any) -> list[Problem]:
    base: FieldPath = ("lorebook",) if isinstance(lorebook, list) else ("lorebook", "entries")
    entries = lorebook if isinstance(lorebook, list) else _list(_get(lorebook, "entries"))
    problems: list[Problem] = []
    budget = _get(lorebook, "token_budget")
    if isinstance(budget, str):
        share = _SHARE.match(budget)
        if share is None or not 0 < float(share.group(1)) <= 100:
            problems.append(doc.problem(("lorebook", "token_budget"), (
                f"{json.dumps(budget)} is not a budget: a number of tokens (1500) or a share "
                "of context.max_tokens between 0% and 100% (25%)")))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        if (entry.get("enabled", True) and not entry.get("constant") and not entry.get("keys")):
            problems.append(doc.problem(
                (*base, i), "this entry has no keys and is not constant, so it can never activate "
                "(add keys, set constant: true, or enabled: false)",
            ))
    return problems


# -- building the frozen persona -----------------------------------------------------


def _build(data: dict, text: str, path: Path | None, defaults: Mapping[str, Any],
           included: Mapping[str, tuple[str, list[dict]]]) -> Persona:
    model, prompt = data["model"], data["prompt"]
    context = data.get("context") or {}
    return Persona(
        id=data["id"],
        name=data["name"],
        model=_model(model),
        prompt=PromptSpec(
            system=prompt["system"],
            examples=tuple(Example(e["user"], e["assistant"]) for e in prompt.get("examples", [])),
            post_history=prompt.get("post_history"),
            greeting=prompt.get("greeting"),
            alternate_greetings=tuple(prompt.get("alternate_greetings", [])),
        ),
        avatar_url=data.get("avatar_url"),
        description=data.get("description", ""),
        context=ContextSpec(
            scope=context.get("scope", "channel"),
            max_messages=context.get("max_messages", 40),
            max_tokens=context.get("max_tokens", 3000),
            include_other_personas=context.get("include_other_personas", True),
            max_images=context.get("max_images", _CONTEXT.max_images),
            max_attachment_text=context.get("max_attachment_text", _CONTEXT.max_attachment_text),
        ),
        triggers=_triggers(data.get("triggers") or {}),
        limits=_limits(data.get("limits") or {}),
        permissions=_permissions(data.get("permissions") or {}),
        delivery=_delivery(data.get("delivery") or {}),
        lorebook=_lorebook(data.get("lorebook"), included),
        tools=tools_spec(data.get("tools")),
        reasoning=data.get("reasoning", "hide"),
        nsfw=data.get("nsfw", False),
        moderation=_moderation(data.get("moderation") or {}),
        tags=tuple(data.get("tags", [])),
        extensions=data.get("extensions", {}),
        source_path=path,
        source_text=text,
        version=persona_version(text, defaults, {n: t for n, (t, _) in included.items()}),
        notes=data.get("notes", ""),
        applied_defaults=defaults,
        included={name: text for name, (text, _) in included.items()},
    )


_CONTEXT = ContextSpec()


def _moderation(moderation: dict) -> ModerationOverride:
    actions = moderation.get("actions") or {}
    return ModerationOverride(
        inbound=moderation.get("inbound"),
        outbound=moderation.get("outbound"),
        thresholds={str(name): {level: threshold_level(value) for level, value in t.items()}
                    for name, t in (moderation.get("thresholds") or {}).items()},
        actions={verdict: (items,) if isinstance(items, str) else tuple(dict.fromkeys(items))
                 for verdict, items in actions.items()},
    )


def _model(model: dict) -> ModelSpec:
    stop = model.get("stop", ())
    fallback = model.get("fallback")
    return ModelSpec(
        provider=model["provider"],
        name=model["name"],
        temperature=model.get("temperature"),
        max_tokens=model.get("max_tokens"),
        top_p=model.get("top_p"),
        frequency_penalty=model.get("frequency_penalty"),
        presence_penalty=model.get("presence_penalty"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        seed=model.get("seed"),
        extra=model.get("extra", {}),
        fallback=FallbackModel(fallback["provider"], fallback["name"]) if fallback else None,
        vision=model.get("vision", False),
    )


def _ids(values: Iterable[str | int] | None) -> frozenset[str]:
    return frozenset(str(v) for v in values or ())


def _triggers(triggers: dict) -> TriggerSpec:
    case_sensitive = triggers.get("case_sensitive", False)
    thread = triggers.get("thread")
    return TriggerSpec(
        mention=triggers.get("mention", True),
        dm=triggers.get("dm", True),
        reply=triggers.get("reply", True),
        keywords=tuple(triggers.get("keywords", [])),
        patterns=tuple(compile_regex(p, case_sensitive=case_sensitive)
                       for p in triggers.get("patterns", [])),
        case_sensitive=case_sensitive,
        channels=_ids(triggers.get("channels")),
        slash=triggers.get("slash", True),
        thread=ThreadSpec(thread.get("after_turns"), thread.get("after_chars")) if thread else None,
        from_personas=frozenset(triggers.get("from_personas", [])),
        max_hops=triggers.get("max_hops", 2),
    )


def _limits(limits: dict) -> LimitsSpec:
    rate, quota = limits.get("rate"), limits.get("quota")
    return LimitsSpec(
        rate=RateLimitSpec(
            capacity=rate.get("capacity", rate.get("messages")),
            per_s=parse_duration(rate["per"]),
            scope=rate.get("scope", "user"),
        ) if rate else None,
        quota=QuotaSpec(
            tokens=quota.get("tokens"),
            messages=quota.get("messages"),
            scope=quota.get("scope", "user"),
            reset=quota.get("reset", "0 0 * * *"),
            timezone=quota.get("timezone", "UTC"),
        ) if quota else None,
        max_concurrent=limits.get("max_concurrent"),
        reply_deadline_s=parse_duration(limits.get("reply_deadline", 60.0)),
    )


def _permissions(permissions: dict) -> PermissionSpec:
    return PermissionSpec(
        **{name: _ids(permissions.get(name)) for name in (
            "allow_users", "deny_users", "allow_roles", "deny_roles", "allow_channels",
            "deny_channels",
        )},
        dms=permissions.get("dms", True),
    )


def _delivery(delivery: dict) -> DeliverySpec:
    defaults = DeliverySpec()
    return DeliverySpec(
        webhook=delivery.get("webhook", defaults.webhook),
        stream_edits=delivery.get("stream_edits", defaults.stream_edits),
        allowed_mentions=AllowedMentions(**delivery.get("allowed_mentions", {})),
        failure_notice=delivery.get("failure_notice", defaults.failure_notice),
        busy_notice=delivery.get("busy_notice", defaults.busy_notice),
        rate_limited_notice=delivery.get("rate_limited_notice", defaults.rate_limited_notice),
        quota_notice=delivery.get("quota_notice", defaults.quota_notice),
        age_restricted_notice=delivery.get("age_restricted_notice",
                                           defaults.age_restricted_notice),
    )


def _lorebook(lorebook: Any, included: Mapping[str, tuple[str, list[dict]]]) -> Lorebook:
    if not lorebook and not included:
        return Lorebook()
    book: dict[str, Any] = ({"entries": lorebook} if isinstance(lorebook, list)
                            else dict(lorebook or {}))
    defaults = Lorebook()
    budget = book.get("token_budget")
    share = defaults.context_share
    if isinstance(budget, str):
        share, budget = float(budget.strip().rstrip("%").strip()) / 100, None
    entries = [*book.get("entries", []), *(e for _, found in included.values() for e in found)]
    return Lorebook(
        entries=tuple(_lore_entry(e) for e in entries),
        scan_depth=book.get("scan_depth", defaults.scan_depth),
        token_budget=budget,
        context_share=share,
        recursive=book.get("recursive", defaults.recursive),
        include=tuple(included),
    )


def _lore_entry(e: Mapping[str, Any]) -> LoreEntry:
    return LoreEntry(
        content=e["content"],
        keys=tuple(e.get("keys", [])),
        secondary_keys=tuple(e.get("secondary_keys", [])),
        selective_logic=e.get("selective_logic", "and_any"),
        regex=e.get("regex", False),
        case_sensitive=e.get("case_sensitive", False),
        whole_words=e.get("whole_words", True),
        constant=e.get("constant", False),
        enabled=e.get("enabled", True),
        priority=e.get("priority", 0),
        order=e.get("order", 100),
        scan_depth=e.get("scan_depth"),
        name=e.get("name"),
        position=e.get("position", "after_system"),
        depth=e.get("depth", 4),
        role=e.get("role", "system"),
        probability=e.get("probability", 100),
        exclude_recursion=e.get("exclude_recursion", False),
        prevent_recursion=e.get("prevent_recursion", False),
        delay_until_recursion=e.get("delay_until_recursion", False),
        sticky=e.get("sticky", 0),
        cooldown=e.get("cooldown", 0),
    )
