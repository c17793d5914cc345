"""The ``tools`` field of a persona file: which tools the persona may call, declared and
checked at load time (every problem located at its line).

``tools`` is a list of entries, or a mapping with ``entries``, ``max_steps`` and
``call_timeout``. An entry is the name of a built-in tool (``roll``, ``now``,
``lore``) or of one installed under the entry point group ``personae.tools``, or an
HTTP tool: a mapping with ``name``, ``description``, ``parameters`` (the JSON Schema
of its arguments) and ``http`` (``method``, ``url`` template, ``headers``,
``timeout``, ``max_response``). The rules: the arguments' schema is a valid JSON
Schema for an object; the URL's ``{placeholders}`` are arguments it declares and come
after the host (the model never chooses where a request goes); secrets are named as
``${ENV_NAME}`` in header values only; names are unique.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

import jsonschema

from ..durations import parse_duration
from ..problems import Problem
from .model import HttpToolSpec, ToolSpec, ToolsSpec

BUILTIN_TOOLS = ("roll", "now", "lore")
ENTRY_POINT_GROUP = "personae.tools"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SECRET = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]i?[bB]|[bB])?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "kib": 1024, "mib": 1024**2}


class _Locator(Protocol):
    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False
                ) -> Problem: ...


def installed_tools() -> frozenset[str]:
    """Names of the tools installed under the entry point group ``personae.tools``."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def tools_spec(value: Any) -> ToolsSpec:
    """The persona's tools from its (valid) ``tools`` field."""
    if not value:
        return ToolsSpec()
    block: dict[str, Any] = {"entries": value} if isinstance(value, list) else value
    defaults = ToolsSpec()
    return ToolsSpec(
        entries=tuple(_entry(e) for e in block.get("entries", [])),
        max_steps=block.get("max_steps", defaults.max_steps),
        call_timeout_s=parse_duration(block.get("call_timeout", defaults.call_timeout_s)),
    )


def _entry(entry: Any) -> ToolSpec:
    if isinstance(entry, str):
        return ToolSpec(name=entry, kind="builtin" if entry in BUILTIN_TOOLS else "plugin")
    http = entry["http"]
    return ToolSpec(
        name=entry["name"], kind="http", description=entry.get("description", ""),
        parameters=entry.get("parameters") or {"type": "object", "properties": {}},
        http=HttpToolSpec(
            method=http.get("method", "GET").upper(), url=http["url"],
            headers=dict(http.get("headers", {})),
            timeout_s=parse_duration(http.get("timeout", 10.0)),
            max_response_bytes=tool_size(http.get("max_response", 65_536))),
    )


def tool_size(value: Any) -> int:
    """A response cap: bytes, or text such as ``64KB`` (the schema checks the form)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    assert match is not None, "the schema admits sizes only"
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


def tool_problems(doc: _Locator, value: Any) -> list[Problem]:
    """What the schema cannot check about ``tools`` (see the module docstring)."""
    base: tuple[str | int, ...] = ("tools",) if isinstance(value, list) else ("tools", "entries")
    entries = value if isinstance(value, list) else (
        value.get("entries") if isinstance(value, dict) else None)
    if not isinstance(entries, list):
        return []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    installed: frozenset[str] | None = None
    for i, entry in enumerate(entries):
        path = (*base, i)
        name = entry if isinstance(entry, str) else (
            entry.get("name") if isinstance(entry, dict) else None)
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(doc.problem(path, f"the tool {name!r} is listed twice "
                                              f"(first as entry {seen[name] + 1})"))
        seen.setdefault(name, i)
        if isinstance(entry, str) and entry not in BUILTIN_TOOLS:
            installed = installed_tools() if installed is None else installed
            if entry not in installed:
                known = ", ".join(BUILTIN_TOOLS + tuple(sorted(installed)))
                problems.append(doc.problem(path, f"no tool named {entry!r} (built in or "
                                                  f"installed: {known}; an HTTP tool is a "
                                                  "mapping with name, description, "
                                                  "parameters and http)"))
        elif isinstance(entry, dict):
            problems += _http_problems(doc, path, entry)
    return problems


def _http_problems(doc: _Locator, path: tuple[str | int, ...], entry: dict) -> list[Problem]:
    problems: list[Problem] = []
    if entry.get("name") in BUILTIN_TOOLS:
        problems.append(doc.problem((*path, "name"), f"{entry['name']!r} is a built-in tool's "
                                                     "name; give the HTTP tool another one"))
    parameters = entry.get("parameters")
    declared: set[str] = set()
    if isinstance(parameters, dict):
        try:
            jsonschema.Draft202012Validator.check_schema(parameters)
        except jsonschema.SchemaError as error:
            where = (*path, "parameters", *error.path)
            problems.append(doc.problem(where, f"not a valid JSON Schema: {error.message}"))
        if parameters.get("type", "object") != "object":
            problems.append(doc.problem((*path, "parameters", "type"),
                                        "the arguments of a tool are an object: use "
                                        "type: object with properties"))
        properties = parameters.get("properties")
        declared = set(properties) if isinstance(properties, dict) else set()
    http = entry.get("http")
    if not isinstance(http, dict):
        return problems
    url = http.get("url")
    if isinstance(url, str):
        problems += _url_problems(doc, (*path, "http", "url"), url, declared)
    headers = http.get("headers")
    if isinstance(headers, dict):
        for header, text in headers.items():
            if not isinstance(text, str):
                continue
            for match in _SECRET.finditer(text):
                if not _ENV_NAME.match(match.group(1)):
                    problems.append(doc.problem(
                        (*path, "http", "headers", header),
                        f"${{{match.group(1)}}} does not name an environment variable "
                        "(letters, digits and _; the secret itself never goes in this file)"))
    return problems


def _url_problems(doc: _Locator, path: tuple[str | int, ...], url: str,
                  declared: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    if _SECRET.search(url):
        problems.append(doc.problem(path, "secrets go in headers (${NAME}), never in the URL: "
                                          "URLs end up in logs"))
    placeholders = _PLACEHOLDER.findall(_SECRET.sub("", url))
    for name in placeholders:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(doc.problem(path, f"the URL uses {{{name}}}, which is not an "
                                              f"argument in parameters (declared: {known})"))
    prefix = url.split("{", 1)[0]
    scheme, separator, rest = prefix.partition("://")
    authority_done = "{" not in url or any(mark in rest for mark in "/?#")
    if not separator or scheme not in ("http", "https") or not authority_done or \
            not urlsplit(prefix if "{" in url else url).hostname:
        problems.append(doc.problem(path, "the scheme and host of the URL must be fixed: "
                                          "placeholders may only come after the host"))
    return problems
