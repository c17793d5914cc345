"""YAML loading that remembers where every key and value came from.

Users read errors as ``file:line:column``; PyYAML's plain loaders forget positions,
so this module composes the node tree (which keeps them), builds the Python data
from it, and keeps a map from field path to position. Duplicate keys, which
PyYAML silently resolves to the last one, are reported as problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .problems import Problem, ProblemsError

# libyaml composes ten times faster and reports the same marks; PyYAML builds without
# it fall back to the pure-Python parser.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR_TAG = "tag:yaml.org,2002:str"

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data plus the position of every value and mapping key in it."""

    file: str
    data: Any
    value_positions: dict[FieldPath, Position] = field(repr=False)
    key_positions: dict[FieldPath, Position] = field(repr=False)

    def position_of(self, path: Sequence[str | int], *, key: bool = False) -> Position:
        """Where ``path`` is; the nearest enclosing value that exists when it does not."""
        path = tuple(path)
        table = self.key_positions if key else self.value_positions
        while path:
            if path in table:
                return table[path]
            if key and path in self.value_positions:
                return self.value_positions[path]
            path = path[:-1]
        return self.value_positions.get((), Position(1, 1))

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        """A :class:`Problem` located at ``path`` in this document."""
        where = self.position_of(path, key=key)
        return Problem(self.file, where.line, where.column, dotted(path), message)


def dotted(path: Sequence[str | int]) -> str:
    """``("limits", "rate", "per")`` -> ``limits.rate.per``; list indexes as ``[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text`` (named ``file`` in messages). Raises :class:`ProblemsError` with
    the line and column of a syntax error, or with every duplicate key."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        if _character_at(text, line, column) == "\t":
            reason += " (a tab: YAML indents with spaces only)"
        raise ProblemsError([Problem(file, line, column, "", f"YAML syntax error: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemsError([Problem(file, 1, 1, "", f"YAML syntax error: {exc}")]) from None
    builder = _Builder(file)
    data = builder.build(node, ()) if node is not None else None
    if builder.problems:
        raise ProblemsError(builder.problems)
    return YamlDocument(file, data, builder.values, builder.keys)


def _character_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return ""


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.values[path] = Position(node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self._constructor.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    key = str(key)
                child = (*path, key)
                if key in result:
                    self.problems.append(Problem(
                        self.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                        dotted(child), "this key appears twice in the same mapping",
                    ))
                self.keys[child] = Position(
                    key_node.start_mark.line + 1, key_node.start_mark.column + 1
                )
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        # Most values are text: skip the constructor's bookkeeping for them.
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        return self._constructor.construct_object(node, deep=True)
