"""YAML loading that remembers where every key and value came from, and reads plain data only.

Users read errors as ``file:line:column``; PyYAML's plain loaders forget positions,
so this module composes the node tree (which keeps them), builds the Python data
from it, and keeps a map from field path to position. Duplicate keys, which
PyYAML silently resolves to the last one, are reported as problems.

Files are written by people and sometimes by attackers, so a document is held to
:class:`YamlLimits` before it is built (size, nodes after expanding aliases, depth;
a "billion laughs" file is refused at the alias that crosses the limit), and it is
read as plain data, the JSON model: text, whole numbers (64-bit), finite numbers,
true/false, null, lists and mappings with text keys. Anything else is a located
problem, never a traceback: YAML tags such as ``!!binary`` or ``!!python/name``,
recursive aliases, bad merge keys (``<<``), NaN and infinity, numbers too large to
store, keys that are lists or mappings. A value that YAML would read as a date or
time (``2024-01-01``) is kept as the text written. Keys follow the same rules as
values (``50256:`` is the number 50256, as in PyYAML).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem, ProblemsError, at_most

# libyaml composes ten times faster and reports the same marks; PyYAML builds without
# it fall back to the pure-Python parser.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YAML = "tag:yaml.org,2002:"
_STR_TAG = _YAML + "str"
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_INT_TAG = _YAML + "int"
_FLOAT_TAG = _YAML + "float"
_CONSTRUCTED = frozenset({_INT_TAG, _FLOAT_TAG, _YAML + "bool", _YAML + "null"})
# Plain scalars YAML resolves to types JSON does not have: kept as the text written.
_AS_WRITTEN = frozenset({_YAML + "timestamp", _YAML + "value", _YAML + "merge"})

# A small document composes into a small graph, counted after composing (quicker); a
# big one could compose into millions of nodes first, so its events are counted
# as they stream.
_SCAN_FIRST = 64 * 1024

_INT_RANGE = range(-(2**63), 2**63)
_LONGEST_INT = 40  # characters; 64-bit numbers need 20 (more with _ and a sign)

FieldPath = tuple[str | int, ...]
_REFUSED = object()  # a key that is reported as a problem and left out


@dataclass(frozen=True, slots=True, kw_only=True)
class YamlLimits:
    """How big one YAML document may be. A document beyond them is refused before any
    of it is built, with the place where it crosses the limit."""

    max_bytes: int = 4 * 1024 * 1024
    """Size of the file in bytes (UTF-8)."""
    max_nodes: int = 200_000
    """Values, keys and items, counting each alias as the nodes it stands for."""
    max_depth: int = 64
    """Levels of lists and mappings inside each other (after expanding aliases)."""


DEFAULT_LIMITS = YamlLimits()


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


def read_yaml_file(path: Path, limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """The text of the YAML file at ``path``, read only when it is within
    ``limits.max_bytes``. Raises :class:`ProblemsError` for a file too big or not
    UTF-8; lets :class:`OSError` (no such file, no permission) through to the caller,
    who knows what the file is for."""
    with path.open("rb") as handle:
        raw = handle.read(limits.max_bytes + 1)
    if len(raw) > limits.max_bytes:
        raise ProblemsError([Problem(str(path), 1, 1, "", _too_big_message(limits))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ProblemsError([Problem(
            str(path), line, column, "",
            f"not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8",
        )]) from None


def load_yaml(text: str, file: str, limits: YamlLimits = DEFAULT_LIMITS) -> YamlDocument:
    """Parse ``text`` (named ``file`` in messages). Raises :class:`ProblemsError` with
    the line and column of a syntax error, of the place a limit is crossed, or of
    every value that is not plain data and every duplicate key."""
    node = _compose(text, file, limits)
    builder = _Builder(file)
    data = builder.build(node, ()) if node is not None else None
    if builder.problems:
        raise ProblemsError(at_most(builder.problems))
    return YamlDocument(file, data, builder.values, builder.keys)


def quick_load(text: str, file: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """The data in ``text`` parsed the quick way (no positions), or None when only
    :func:`load_yaml` can say what it holds or what is wrong with it (syntax errors,
    duplicate keys, anything but plain data with text keys). A document beyond
    ``limits`` raises :class:`ProblemsError` here too, so that it is never built."""
    if _check_size(text, file, limits) is not None:
        return None
    try:
        loader = _QuickLoader(text)
    except Exception:  # text that cannot be UTF-8 encoded; the located parser says where
        return None
    try:
        if len(text) > _SCAN_FIRST:
            _check_shape(text, file, limits)
        node = loader.get_single_node()
        if node is None:
            return None
        if not _fits(node, limits):
            _check_shape(text, file, limits)
            return None
        return loader.construct_document(node)
    except ProblemsError:
        raise
    except Exception:  # any doubt goes to the located parser, which explains it
        return None
    finally:
        loader.dispose()


# -- limits ---------------------------------------------------------------------------


def _too_big_message(limits: YamlLimits) -> str:
    return f"the file is larger than {_size(limits.max_bytes)}, the most a YAML file may hold"


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count % (1024 * 1024) == 0 else f"{count:,} bytes"


def _check_size(text: str, file: str, limits: YamlLimits) -> Problem | None:
    # Characters are at most 4 bytes: encode only when the count cannot decide.
    if len(text) > limits.max_bytes or (
            len(text) * 4 > limits.max_bytes and len(text.encode("utf-8", "surrogatepass"))
            > limits.max_bytes):
        return Problem(file, 1, 1, "", _too_big_message(limits))
    return None


def _compose(text: str, file: str, limits: YamlLimits) -> yaml.Node | None:
    if (too_big := _check_size(text, file, limits)) is not None:
        raise ProblemsError([too_big])
    try:
        if len(text) > _SCAN_FIRST:
            _check_shape(text, file, limits)
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is not None and not _fits(node, limits):
            _check_shape(text, file, limits)
            raise ProblemsError([Problem(file, 1, 1, "", "the document is too large or "
                                         "recursive once aliases are expanded")])
        return node
    except yaml.MarkedYAMLError as exc:
        raise ProblemsError([_syntax_problem(text, file, exc)]) from None
    except yaml.reader.ReaderError as exc:
        index = exc.position
        if _COMPOSER is not yaml.SafeLoader:  # libyaml counts bytes of UTF-8
            index = len(text.encode("utf-8")[:index].decode("utf-8", "ignore"))
        raise ProblemsError([_problem_at(
            text, file, index, f"the character U+{exc.character:04X} is not allowed in YAML "
            "(write control characters as escapes inside double quotes, e.g. \"\\x07\")",
        )]) from None
    except UnicodeEncodeError as exc:  # only text made in memory can hold these
        raise ProblemsError([_problem_at(
            text, file, exc.start, f"U+{ord(text[exc.start]):04X} is half of a surrogate "
            "pair on its own, which is not valid Unicode",
        )]) from None
    except yaml.YAMLError as exc:
        raise ProblemsError([Problem(file, 1, 1, "", f"YAML syntax error: {exc}")]) from None


def _fits(root: yaml.Node, limits: YamlLimits) -> bool:
    """Whether the composed ``root`` is within ``limits`` once aliases are expanded: a
    quick count over the node graph (aliases share their anchor's node, so each node
    is counted once and multiplied by its uses). :func:`_check_shape` says where not."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, levels) it expands to
    active: set[int] = set()

    def expand(node: yaml.Node, level: int) -> tuple[int, int] | None:
        if isinstance(node, yaml.ScalarNode):
            return 1, 0
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active or level >= limits.max_depth:
            return None
        active.add(key)
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [part for pair in node.value for part in pair])
        nodes, levels = 1, 0
        for child in children:
            size = expand(child, level + 1)
            if size is None:
                return None
            nodes += size[0]
            levels = max(levels, size[1])
            if nodes > limits.max_nodes:
                return None
        active.discard(key)
        sizes[key] = nodes, levels + 1
        return sizes[key]

    return expand(root, 0) is not None


def _check_shape(text: str, file: str, limits: YamlLimits) -> None:
    """Walk the parser's events once, before anything is built, counting the nodes each
    anchor stands for: an alias adds its anchor's count, so a document that would
    expand beyond ``limits`` (or into itself) is refused at the alias that does it.
    Syntax errors are left to the composer, which reports them the same way."""
    # anchor -> (nodes, levels of lists and mappings) that an alias to it stands for
    sizes: dict[str, tuple[int, int]] = {}
    # per open list or mapping: [its anchor, the node count before it, its deepest child]
    open_collections: list[list[Any]] = []
    total = 0
    for event in yaml.parse(text, Loader=_COMPOSER):
        if isinstance(event, yaml.CollectionStartEvent):
            total += 1
            open_collections.append([event.anchor, total - 1, 0])
            if len(open_collections) > limits.max_depth:
                _shape_problem(file, event, "lists and mappings are nested more than "
                               f"{limits.max_depth} levels deep, more than a file may hold")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, before, deepest = open_collections.pop()
            nodes, levels = total - before, deepest + 1
            if anchor is not None:
                sizes[anchor] = (nodes, levels)
        elif isinstance(event, yaml.ScalarEvent):
            nodes, levels = 1, 0
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            if any(entry[0] == event.anchor for entry in open_collections):
                _shape_problem(file, event, f"the alias *{event.anchor} is inside the value "
                               f"its anchor &{event.anchor} names, so it would never end "
                               "(recursive data is not allowed)")
            nodes, levels = sizes.get(event.anchor or "", (1, 0))  # undefined: the composer says
            total += nodes
            if len(open_collections) + levels > limits.max_depth:
                _shape_problem(file, event, f"the alias *{event.anchor} nests lists and "
                               f"mappings more than {limits.max_depth} levels deep, more than "
                               "a file may hold")
        else:
            continue
        if open_collections:
            open_collections[-1][2] = max(open_collections[-1][2], levels)
        if total > limits.max_nodes:
            what = (f"the alias *{event.anchor} brings the document to more than "
                    if isinstance(event, yaml.AliasEvent) else "the document has more than ")
            _shape_problem(file, event, f"{what}{limits.max_nodes:,} values once aliases are "
                           "expanded, more than a file may hold")


def _shape_problem(file: str, event: yaml.Event, message: str) -> None:
    mark = event.start_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    raise ProblemsError([Problem(file, line, column, "", message)])


_OPENED = {"while parsing a flow sequence": "this [ is never closed",
           "while parsing a flow mapping": "this { is never closed",
           "while scanning a quoted scalar": "this quoted text is never closed",
           "while scanning a block scalar": "this block of text is malformed"}


def _syntax_problem(text: str, file: str, exc: yaml.MarkedYAMLError) -> Problem:
    """A syntax error where the mistake is: the parser notices an unclosed ``[``, ``{``
    or quote where the text runs out or the next key starts, lines later; the mistake
    is where it was opened."""
    problem, context = exc.problem_mark, exc.context_mark
    opened = _OPENED.get(exc.context or "")
    if opened and context is not None and (problem is None or problem.line > context.line):
        where = f" (noticed at line {problem.line + 1})" if problem is not None else ""
        reason = f"{opened}: {exc.problem or 'it runs on'}{where}"
        return Problem(file, context.line + 1, context.column + 1, "",
                       f"YAML syntax error: {reason}")
    mark = problem or context
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    reason = exc.problem or exc.context or "invalid YAML"
    if _character_at(text, line, column) == "\t":
        reason += " (a tab: YAML indents with spaces only)"
    return Problem(file, line, column, "", f"YAML syntax error: {reason}")


def _problem_at(text: str, file: str, index: int, message: str) -> Problem:
    line = text.count("\n", 0, index) + 1
    return Problem(file, line, index - (text.rfind("\n", 0, index) + 1) + 1, "", message)


def _character_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return ""


# -- building plain data ---------------------------------------------------------------


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


def _tag_message(tag: str) -> str:
    return (f"the YAML tag {_shown_tag(tag)} is not supported: these files hold plain data "
            "(text, numbers, true/false, null, lists and mappings); remove the tag, or quote "
            "the value to keep it as text")


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self._written: dict[int, set[int]] = {}

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.values[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._refuse(node, path, _tag_message(node.tag))
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> Any:
        if node.tag != _MAP_TAG:
            return self._refuse(node, path, _tag_message(node.tag))
        # Flattening (<<) puts the merged pairs first: the keys written in the mapping
        # itself override merged ones, but not each other. A shared (aliased) mapping is
        # flattened once, so which keys it wrote itself is remembered.
        written = self._written.setdefault(id(node), {id(key) for key, _ in node.value})
        try:
            self._constructor.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            where = exc.problem_mark
            self.problems.append(Problem(
                self.file, where.line + 1 if where else 1, where.column + 1 if where else 1,
                dotted(path), "a merge key (<<) takes a mapping or a list of mappings, "
                "for example <<: *defaults",
            ))
            return None
        result: dict[Any, Any] = {}
        own: dict[Any, bool] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is _REFUSED:
                continue
            child = (*path, key)
            if own.get(key) and id(key_node) in written:
                self.problems.append(Problem(
                    self.file, *_position_tuple(key_node), dotted(child),
                    "this key appears twice in the same mapping",
                ))
            own[key] = own.get(key, False) or id(key_node) in written
            self.keys[child] = _position(key_node)
            result[key] = self.build(value_node, child)
        return result

    def _key(self, node: yaml.Node, path: FieldPath) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            self.problems.append(Problem(self.file, *_position_tuple(node), dotted(path),
                                         f"a key must be text, not {kind}"))
            return _REFUSED
        before = len(self.problems)
        key = self._scalar(node, path)
        return _REFUSED if len(self.problems) > before else key

    def _scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        tag = node.tag
        if tag == _STR_TAG or tag in _AS_WRITTEN:
            return node.value
        if tag not in _CONSTRUCTED:
            return self._refuse(node, path, _tag_message(tag))
        if tag == _INT_TAG and len(node.value) > _LONGEST_INT:
            return self._refuse(node, path, _too_large(node.value))
        try:
            value = self._constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML's constructors fail in many ways on odd text (!!int '')
            kind = {_INT_TAG: "a whole number", _FLOAT_TAG: "a number"}.get(tag, "true or false")
            return self._refuse(node, path, f"{node.value!r} is not {kind}")
        if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
            return self._refuse(node, path, _too_large(node.value))
        if isinstance(value, float) and not math.isfinite(value):
            return self._refuse(node, path, f"{node.value} is not a usable number (NaN and "
                                            "infinity are not allowed)")
        return value

    def _refuse(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        self.problems.append(Problem(self.file, *_position_tuple(node), dotted(path), message))
        return None


def _too_large(text: str) -> str:
    shown = text if len(text) <= 24 else text[:20] + "..."
    return (f"{shown} is too large a number (whole numbers are 64-bit: at most "
            f"{_INT_RANGE.stop - 1}); quote it to keep it as text")


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _position_tuple(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _NeedsLocatedParse(Exception):
    pass


class _QuickLoader(_COMPOSER):  # type: ignore[misc, valid-type]
    """Builds plain data without positions; gives up (to :func:`load_yaml`) on anything
    it treats specially: duplicate keys, keys that are not text, tags, dates, numbers
    out of range."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        tag = node.tag
        # Most values are text: skip the constructor's bookkeeping for them.
        if tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        if isinstance(node, yaml.MappingNode):
            if tag != _MAP_TAG:
                raise _NeedsLocatedParse
        elif isinstance(node, yaml.SequenceNode):
            if tag != _SEQ_TAG:
                raise _NeedsLocatedParse
        elif tag not in _CONSTRUCTED or (tag == _INT_TAG and len(node.value) > _LONGEST_INT):
            raise _NeedsLocatedParse
        value = super().construct_object(node, deep=deep)
        if isinstance(value, float) and not math.isfinite(value):
            raise _NeedsLocatedParse
        if isinstance(value, int) and value not in _INT_RANGE:
            raise _NeedsLocatedParse
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)
        keys = [key.value for key, _ in node.value if key.tag == _STR_TAG]
        if len(keys) != len(node.value) or len(set(keys)) != len(keys):
            raise _NeedsLocatedParse
        return super().construct_mapping(node, deep=deep)
