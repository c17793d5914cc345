"""JSON Schema validation whose errors point at a line and say what to do.

Schemas may carry two extra keywords that this module reads: ``x-error``, a
sentence used instead of jsonschema's generic message when that subschema fails
(``is not a duration (use 60s, 5m, 1h)``), and ``x-hint`` appended to it.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

from .problems import Problem
from .yamldoc import YamlDocument

_TYPE_NAMES = {
    "string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
    "object": "a mapping of keys", "array": "a list", "null": "nothing",
}


@cache
def bundled_schema(package: str, name: str) -> Mapping[str, Any]:
    """A JSON Schema shipped inside a package (cached: schemas never change at run time)."""
    return json.loads(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def fast_validator_for(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A compiled (fastjsonschema) validator for ``schema``: raises on invalid data, with
    no location; for the quick yes of valid files, the located errors come from
    :func:`validator_for`. Compiled from a deep copy: fastjsonschema rewrites the
    ``$ref`` it walks in place, and the bundled schemas are shared."""
    return fastjsonschema.compile(copy.deepcopy(dict(schema)), use_default=False)


def validator_for(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A draft 2020-12 validator for ``schema`` with format checking on."""
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_problems(
    document: YamlDocument, validator: jsonschema.protocols.Validator
) -> list[Problem]:
    """Every schema violation in ``document``, located and explained, in file order."""
    problems = [
        problem for error in _leaf_errors(validator.iter_errors(document.data))
        for problem in _problems(document, error)
    ]
    unique = {(p.line, p.column, p.field, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line, p.column, p.field))


def _leaf_errors(errors: Iterable[ValidationError]) -> Iterable[ValidationError]:
    """Unpack ``anyOf``/``oneOf`` failures to the alternative that came closest."""
    for error in errors:
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        if error.validator in ("anyOf", "oneOf") and error.context and "x-error" not in schema:
            best = jsonschema.exceptions.best_match(error.context)
            yield from _leaf_errors([best])
        else:
            yield error


def _problems(document: YamlDocument, error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        return _unknown_keys(document, error, path)
    if error.validator == "required":
        missing = _quoted_from_message(error.message)
        return [document.problem((*path, missing), f"missing required key '{missing}'", key=True)]
    return [_problem(document, error, path)]


def _problem(document: YamlDocument, error: ValidationError, path: tuple) -> Problem:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("x-error")
    message = f"{_show(error.instance)} {custom}" if custom else _default_message(error)
    if hint := schema.get("x-hint"):
        message = f"{message} ({hint})"
    return document.problem(path, message)


def _unknown_keys(document: YamlDocument, error: ValidationError, path: tuple) -> list[Problem]:
    """One problem per unknown key (jsonschema reports them all in one error)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = list(schema.get("properties", {}))
    extra = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
    problems = []
    for key in extra or ["?"]:
        message = f"unknown key '{key}'"
        if suggestion := difflib.get_close_matches(str(key), known, n=1, cutoff=0.6):
            message += f" (did you mean '{suggestion[0]}'?)"
        elif known:
            message += f" (known keys: {', '.join(sorted(known))})"
        problems.append(document.problem((*path, key), message, key=True))
    return problems


def _default_message(error: ValidationError) -> str:
    instance = error.instance
    match error.validator:
        case "type":
            wanted: Any = error.validator_value
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            return f"expected {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}, got {_show(instance)}"
        case "enum":
            allowed: Any = error.validator_value
            options = ", ".join(str(v) for v in allowed)
            message = f"{_show(instance)} is not one of: {options}"
            close = difflib.get_close_matches(str(instance), [str(v) for v in allowed], n=1)
            return message + (f" (did you mean '{close[0]}'?)" if close else "")
        case "minimum" | "exclusiveMinimum":
            return f"{_show(instance)} is too small (at least {error.validator_value})"
        case "maximum" | "exclusiveMaximum":
            return f"{_show(instance)} is too large (at most {error.validator_value})"
        case "minLength":
            return "must not be empty" if error.validator_value == 1 else error.message
        case "pattern":
            return f"{_show(instance)} does not match the pattern {error.validator_value}"
        case "minItems":
            return f"needs at least {error.validator_value} item(s)"
        case "maxItems" if isinstance(instance, list):
            return f"has {len(instance)} items, more than the {error.validator_value} allowed"
        case "maxLength" if isinstance(instance, str):
            return (f"is {len(instance):,} characters long, more than the "
                    f"{error.validator_value:,} allowed")
        case _:
            return _shortened(error.message, 300)


def _show(value: Any) -> str:
    if isinstance(value, str):
        # A problem quotes the value, not a whole prompt pasted where a number belongs.
        return json.dumps(_shortened(value, 60), ensure_ascii=False)
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return json.dumps(value)


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _quoted_from_message(message: str) -> str:
    # jsonschema says "'name' is a required property"
    return message.split("'")[1] if message.count("'") >= 2 else message
