"""Character Card V2/V3 (JSON, or PNG with a ``chara``/``ccv3`` text chunk) -> persona YAML.

Cards in the wild are often a little broken ("" where a number belongs, ``null``
strings, keys as one comma-separated string). Such cards import with a warning per
repair; only a file that holds no card at all is refused.

Cards come from strangers, so every size is capped before it can cost anything
(the caps below; each refusal says which): the file, a compressed text chunk as it
inflates (incrementally, never past the cap), the JSON's nesting, each text field
and the persona made. Numbers JSON cannot hold (``NaN``, ``Infinity``, ``1e999``)
are repairs with a warning; text that is not valid Unicode (a lone surrogate such
as ``\ud800``) is refused, naming the field.

Card macros ``{{char}}``/``{{user}}`` (and the old ``<BOT>``/``<USER>``) become the
template variables ``{persona}``/``{user}``; every other brace is escaped so the
text renders exactly as written. Creator notes go to ``notes`` (never prompted);
card fields personae has no use for, and all extension data, are kept in
``extensions``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..patterns import PatternError, compile_regex
from ..problems import Problem, ProblemsError
from .yamlout import dump_yaml

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<BOT>|<USER>|[{}]", re.IGNORECASE)
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
# Not \s*: it spans newlines, so each of a million blank lines would rescan the rest.
_START = re.compile(r"^[^\S\n]*<START>[^\S\n]*$", re.IGNORECASE | re.MULTILINE)
_TURN = re.compile(r"^\s*(\{\{\s*(?:char|user)\s*\}\}|<BOT>|<USER>)\s*:\s?", re.IGNORECASE)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_KNOWN_DATA_FIELDS = frozenset({
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings",
    "character_book", "tags", "extensions",
})
_SELECTIVE_LOGIC = {0: "and_any", 1: "not_all", 2: "not_any", 3: "and_all"}
MODELINE = "# yaml-language-server: $schema=./persona.schema.json"


@dataclass(frozen=True, slots=True)
class ImportedCard:
    """A card turned into persona data, plus a warning for every repair made."""

    persona_id: str
    name: str
    data: Mapping[str, Any]
    warnings: tuple[str, ...] = ()

    def to_yaml(self, source: str) -> str:
        """The persona file text: modeline, provenance comment, then the fields."""
        body = dump_yaml(dict(self.data))
        return f"{MODELINE}\n# Imported from the character card {source}.\n{body}"


MAX_FILE_BYTES = 32 * 1024 * 1024
"""A card file (a PNG carries an image besides the card)."""
MAX_JSON_BYTES = 16 * 1024 * 1024
"""The card's JSON text, however it is stored (a file, or a PNG chunk once decoded)."""
MAX_CHUNK_BYTES = 24 * 1024 * 1024
"""A PNG text chunk once inflated (base64: 4/3 of the JSON it holds)."""
MAX_DEPTH = 48
"""Levels of lists and objects inside each other in the card's JSON."""
MAX_NAME_CHARS = 80
"""A persona name (Discord's limit for a webhook's name)."""
MAX_FIELD_CHARS = 1_000_000
"""Any other text field of the card (about 250,000 tokens: more than a model reads)."""

_MIB = 1024 * 1024
# the persona schema's maxima, so that an imported lorebook validates
_MOST_SCAN_DEPTH = 1000
_MOST_TOKEN_BUDGET = 2_000_000
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGE = range(-(2**63), 2**63)


def read_card(path: str | Path) -> dict[str, Any]:
    """The card JSON object in a ``.json`` or ``.png`` file. Raises ProblemsError."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _error(path, f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _error(path, f"the file is larger than {MAX_FILE_BYTES // _MIB} MiB, the most a "
                           "character card may be")
    if raw.startswith(_PNG_SIGNATURE):
        text = _card_text_from_png(path, raw)
    else:
        if len(raw) > MAX_JSON_BYTES:
            raise _error(path, f"the card's JSON is larger than {MAX_JSON_BYTES // _MIB} MiB, "
                               "the most a character card may hold")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _error(path, "neither a PNG nor UTF-8 JSON: not a character card") from None
    card = _parse_json(path, text)
    if not isinstance(card, dict):
        raise _error(path, "the card must be a JSON object")
    _check_tree(path, card)
    return card


def _parse_json(path: Path, text: str) -> Any:
    try:
        # Huge whole numbers become floats (infinity past 1e308), repaired later like
        # NaN and Infinity: int() of thousands of digits is refused by Python anyway.
        return json.loads(text, parse_int=lambda digits: int(digits) if len(digits) <= 40
                          else float(digits))
    except json.JSONDecodeError as exc:
        raise ProblemsError([Problem(str(path), exc.lineno, exc.colno, "",
                                     f"the card is not valid JSON: {exc.msg}")]) from None
    except RecursionError:
        raise _error(path, f"the card nests lists and objects more than {MAX_DEPTH} levels "
                           "deep, more than a character card may") from None


def _check_tree(path: Path, card: dict[str, Any]) -> None:
    """Refuse nesting beyond :data:`MAX_DEPTH` and text that is not valid Unicode, naming
    the field (a lone surrogate could not be written to the persona file)."""
    stack: list[tuple[Any, str, int]] = [(card, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise ProblemsError([Problem(str(path), 1, 1, where, (
                    f"the card nests lists and objects more than {MAX_DEPTH} levels deep, "
                    "more than a character card may"))])
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                child = f"{where}[{key}]" if isinstance(key, int) else (
                    f"{where}.{key}" if where else str(key))
                if isinstance(key, str):
                    _check_text(path, child, key)
                stack.append((item, child, depth + 1))
        elif isinstance(value, str):
            _check_text(path, where, value)


def _check_text(path: Path, where: str, text: str) -> None:
    if len(text) > MAX_FIELD_CHARS:
        raise ProblemsError([Problem(str(path), 1, 1, where, (
            f"is {len(text):,} characters long, more than the {MAX_FIELD_CHARS:,} a card's "
            "text may have"))])
    if (found := _SURROGATE.search(text)) is not None:
        raise ProblemsError([Problem(str(path), 1, 1, where, (
            f"holds a lone surrogate \\u{ord(found.group()):04x} at character "
            f"{found.start() + 1}, which is not valid Unicode: fix that text in the card"))])


def card_to_persona(
    card: Mapping[str, Any], *, persona_id: str | None = None, source: str = "<card>"
) -> ImportedCard:
    """Turn a V1, V2 or V3 card into persona data (``model`` is left to persona_defaults).
    Raises ProblemsError (naming ``source``) only when there is no usable card."""
    warnings: list[str] = []
    spec = card.get("spec")
    wrapped = isinstance(card.get("data"), dict)
    if spec in ("chara_card_v2", "chara_card_v3") and not wrapped:
        raise ProblemsError([Problem(source, 1, 1, "data", f"a {spec} card needs a data object")])
    if spec not in ("chara_card_v2", "chara_card_v3"):
        if wrapped:
            warnings.append(f"unknown card spec {spec!r}; read its data object as a V2 card")
        elif spec is not None:
            warnings.append(f"unknown card spec {spec!r}; read as a version 1 card")
    data = card["data"] if wrapped else card
    fields = _Fields(data, warnings)
    name = fields.text("name").strip()
    if not name:
        raise ProblemsError([Problem(source, 1, 1, "name", "the card has no name")])
    if len(name) > MAX_NAME_CHARS:
        raise ProblemsError([Problem(source, 1, 1, "name", (
            f"the card's name is {len(name):,} characters long; a persona name has at most "
            f"{MAX_NAME_CHARS} (Discord's limit for the name a webhook posts with)"))])
    persona_id = persona_id or slug(name)

    persona: dict[str, Any] = {"id": persona_id, "name": name}
    description = fields.text("description")
    if summary := _summary(description, name):
        persona["description"] = summary
    if notes := fields.text("creator_notes").strip():
        persona["notes"] = notes
    if tags := fields.strings("tags"):
        persona["tags"] = tags
    persona["prompt"] = _prompt(fields, name, description, warnings)
    if book := data.get("character_book"):
        persona["lorebook"] = _lorebook(book, name, warnings)
    persona["extensions"] = _extensions(card, data, warnings)
    return ImportedCard(persona_id, name, persona, tuple(warnings))


def slug(name: str) -> str:
    """A persona id made from a display name: ``"Seraphina the Bold"`` -> ``seraphina-the-bold``."""
    text = _SLUG_JUNK.sub("-", name.lower()).strip("-")[:64].strip("-")
    return text or "character"


def to_template(text: str, char_name: str | None = None) -> str:
    """Card text as a persona template: macros become variables, other braces are escaped.
    With ``char_name``, ``{{char}}`` becomes that literal name (for non-template text)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in "{}":
            return token * 2 if char_name is None else token
        who = (match.group(1) or ("char" if token.upper() == "<BOT>" else "user")).lower()
        if char_name is not None:
            return char_name if who == "char" else "the user"
        return "{persona}" if who == "char" else "{user}"

    return _MACRO.sub(replace, text)


# -- reading ---------------------------------------------------------------------------


def _error(path: Path, message: str) -> ProblemsError:
    return ProblemsError([Problem(str(path), 1, 1, "", message)])


def _card_text_from_png(path: Path, raw: bytes) -> str:
    chunks: dict[str, bytes] = {}
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[offset:offset + 8])
        body = raw[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or b"\0" not in body:
            continue
        keyword, _, value = body.partition(b"\0")
        name = keyword.decode("latin-1").lower()
        if name not in _CARD_CHUNKS:
            continue  # never inflate what is not a card
        payload = _chunk_text(path, kind, value)
        if payload is not None:
            chunks[name] = payload
    # A V3 card carries both; ccv3 is the newer, complete one.
    payload = chunks.get("ccv3") or chunks.get("chara")
    if payload is None:
        raise _error(path, "this PNG has no character card (no 'chara' or 'ccv3' text chunk)")
    try:
        decoded = base64.b64decode(payload.strip(), validate=False)
    except binascii.Error:
        raise _error(path, "the card chunk is not base64-encoded UTF-8 JSON") from None
    if len(decoded) > MAX_JSON_BYTES:
        raise _error(path, f"the card's JSON is larger than {MAX_JSON_BYTES // _MIB} MiB, the "
                           "most a character card may hold")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(path, "the card chunk is not base64-encoded UTF-8 JSON") from None


_CARD_CHUNKS = ("chara", "ccv3")


def _chunk_text(path: Path, kind: bytes, value: bytes) -> bytes | None:
    """The text of a tEXt, zTXt or iTXt chunk (after its keyword), inflated when
    compressed; None for a chunk that cannot be read."""
    if kind == b"tEXt":
        return value
    if kind == b"zTXt":
        return _inflate(path, value[1:])  # compression method byte, then the stream
    # iTXt: compression flag, method, language tag, translated keyword, then the text
    if len(value) < 2:
        return None
    compressed, rest = value[0], value[2:]
    parts = rest.split(b"\0", 2)
    if len(parts) != 3:
        return None
    return _inflate(path, parts[2]) if compressed else parts[2]


def _inflate(path: Path, data: bytes) -> bytes | None:
    """``data`` inflated, a bounded piece at a time: a few kilobytes that would inflate
    to gigabytes are refused once they pass :data:`MAX_CHUNK_BYTES`."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_CHUNK_BYTES + 1)
    except zlib.error:
        return None
    if len(text) > MAX_CHUNK_BYTES:
        raise _error(path, f"the card's text chunk inflates to more than "
                           f"{MAX_CHUNK_BYTES // _MIB} MiB, the most a character card may hold")
    return text


class _Fields:
    """Reads card fields leniently, noting each repair."""

    def __init__(self, data: Mapping[str, Any], warnings: list[str]) -> None:
        self.data = data
        self.warnings = warnings

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        self.warnings.append(f"{key}: expected text, got {type(value).__name__}; converted")
        return str(value)

    def strings(self, key: str) -> list[str]:
        return _strings(self.data.get(key), key, self.warnings)


def _strings(value: Any, where: str, warnings: list[str]) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        warnings.append(f"{where}: expected a list, got one string; split on commas")
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        warnings.append(f"{where}: expected a list, got {type(value).__name__}; ignored")
        return []
    kept = [str(v) for v in value if isinstance(v, str | int | float) and str(v).strip()]
    if len(kept) != len(value):
        warnings.append(f"{where}: dropped {len(value) - len(kept)} empty or non-text item(s)")
    return kept


def _number(value: Any, where: str, default: int | None, warnings: list[str], *,
            most: int = _INT_RANGE.stop - 1) -> int | None:
    """A whole number from a card field, at most ``most``; a repair (with a warning) for
    anything else, ``Infinity`` and ``"1e999"`` included."""
    if value is None:
        return default
    if isinstance(value, bool):
        warnings.append(f"{where}: expected a number, got {value!r}; used {default!r}")
        return default
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            warnings.append(f"{where}: expected a number, got {value!r}; used {default!r}")
            return default
    if not isinstance(number, int | float):
        warnings.append(f"{where}: expected a number, got {type(value).__name__}; "
                        f"used {default!r}")
        return default
    if isinstance(number, float) and not math.isfinite(number):
        warnings.append(f"{where}: {value!r} is not a usable number; used {default!r}")
        return default
    whole = int(number)
    if not _INT_RANGE.start <= whole <= most:
        kept = min(max(whole, _INT_RANGE.start), most)
        warnings.append(f"{where}: {_shown(value)} is out of range; used {kept}")
        return kept
    return whole


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 30 else shown[:26] + "..."


def _flag(value: Any, where: str, default: bool, warnings: list[str]) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    warnings.append(f"{where}: expected true or false, got {value!r}; used {default}")
    return default


# -- building --------------------------------------------------------------------------


def _summary(description: str, name: str) -> str:
    first = to_template(description.strip().split("\n", 1)[0], name).strip()
    return first if len(first) <= 160 else first[:157].rstrip() + "..."


def _prompt(fields: _Fields, name: str, description: str, warnings: list[str]) -> dict[str, Any]:
    parts = []
    default_system = "You are {persona}. Stay in character and reply as {persona} would."
    if system := fields.text("system_prompt").strip():
        pieces = _ORIGINAL.split(system)
        parts.append(default_system.join(to_template(piece) for piece in pieces))
    else:
        parts.append(default_system)
    if description.strip():
        parts.append(to_template(description.strip()))
    if personality := fields.text("personality").strip():
        parts.append(f"{{persona}}'s personality: {to_template(personality)}")
    if scenario := fields.text("scenario").strip():
        parts.append(f"Scenario: {to_template(scenario)}")
    prompt: dict[str, Any] = {"system": "\n\n".join(parts) + "\n"}
    if examples := _examples(fields.text("mes_example"), warnings):
        prompt["examples"] = examples
    if post := fields.text("post_history_instructions").strip():
        prompt["post_history"] = to_template(post)
    if greeting := fields.text("first_mes").strip():
        prompt["greeting"] = to_template(greeting)
    alternates = [to_template(g) for g in fields.strings("alternate_greetings")]
    if alternates:
        prompt["alternate_greetings"] = alternates
    return prompt


def _examples(text: str, warnings: list[str]) -> list[dict[str, str]]:
    examples: list[dict[str, str]] = []
    for number, block in enumerate(b for b in _START.split(text) if b.strip()):
        # each turn's lines, joined once (adding line by line was quadratic)
        lines_of: list[tuple[str, list[str]]] = []
        for line in block.strip().splitlines():
            if match := _TURN.match(line):
                who = "assistant" if re.search(r"char|bot", match.group(1), re.I) else "user"
                lines_of.append((who, [line[match.end():]]))
            elif lines_of:
                lines_of[-1][1].append(line)
        turns = [(who, "\n".join(lines)) for who, lines in lines_of]
        pending_user: str | None = None
        dropped = 0
        for who, said in turns:
            if who == "user":
                dropped += pending_user is not None
                pending_user = said.strip()
            elif pending_user is not None:
                examples.append({"user": to_template(pending_user),
                                 "assistant": to_template(said.strip())})
                pending_user = None
            else:
                dropped += 1
        dropped += pending_user is not None
        if not turns:
            warnings.append(f"mes_example block {number + 1}: no {{{{user}}}}:/{{{{char}}}}: "
                            "lines; skipped")
        elif dropped:
            warnings.append(f"mes_example block {number + 1}: {dropped} turn(s) without a partner "
                            "(examples are user/assistant pairs); skipped")
    return [e for e in examples if e["assistant"]]


def _lorebook(book: Any, name: str, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(book, dict):
        warnings.append("character_book: expected an object; ignored")
        return {}
    lorebook: dict[str, Any] = {}
    if (depth := _number(book.get("scan_depth"), "character_book.scan_depth", None, warnings,
                         most=_MOST_SCAN_DEPTH)):
        lorebook["scan_depth"] = max(depth, 1)
    budget = _number(book.get("token_budget"), "character_book.token_budget", None, warnings,
                     most=_MOST_TOKEN_BUDGET)
    if budget:
        lorebook["token_budget"] = max(budget, 1)
    entries = []
    raw_entries = book.get("entries")
    if not isinstance(raw_entries, list):
        raw_entries = []
        if book.get("entries") is not None:
            warnings.append("character_book.entries: expected a list; ignored")
    for i, raw in enumerate(raw_entries):
        where = f"character_book.entries[{i}]"
        if not isinstance(raw, dict):
            warnings.append(f"{where}: expected an object; skipped")
            continue
        if entry := _lore_entry(raw, where, name, warnings):
            entries.append(entry)
    lorebook["entries"] = entries
    return lorebook


def _lore_entry(raw: dict, where: str, name: str, warnings: list[str]) -> dict[str, Any] | None:
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        warnings.append(f"{where}: no content; skipped")
        return None
    extensions: dict[str, Any] = (raw["extensions"] if isinstance(raw.get("extensions"), dict)
                                  else {})
    entry: dict[str, Any] = {}
    if isinstance(raw.get("name") or raw.get("comment"), str):
        entry["name"] = raw.get("name") or raw.get("comment")
    keys = _strings(raw.get("keys"), f"{where}.keys", warnings)
    constant = _flag(raw.get("constant"), f"{where}.constant", False, warnings)
    enabled = _flag(raw.get("enabled"), f"{where}.enabled", True, warnings)
    if not keys and not constant:
        if enabled:
            warnings.append(f"{where}: no keys and not constant, so it could never activate; "
                            "imported disabled")
        enabled = False
    entry["keys"] = keys
    secondary = _strings(raw.get("secondary_keys"), f"{where}.secondary_keys", warnings)
    if secondary and _flag(raw.get("selective"), f"{where}.selective", True, warnings):
        entry["secondary_keys"] = secondary
        logic = _number(extensions.get("selectiveLogic"), f"{where}.extensions.selectiveLogic",
                        0, warnings)
        entry["selective_logic"] = _SELECTIVE_LOGIC.get(logic or 0, "and_any")
    if _flag(raw.get("use_regex"), f"{where}.use_regex", False, warnings):
        entry["regex"] = True
        for key in keys + secondary:
            try:
                compile_regex(key, case_sensitive=True)
            except PatternError as exc:
                warnings.append(f"{where}: {key!r} is not a valid regex ({exc}); imported disabled")
                entry["regex"] = False
                enabled = False
    if _flag(raw.get("case_sensitive"), f"{where}.case_sensitive", False, warnings):
        entry["case_sensitive"] = True
    if extensions.get("match_whole_words") is False:
        entry["whole_words"] = False
    if constant:
        entry["constant"] = True
    if not enabled:
        entry["enabled"] = False
    if priority := _number(raw.get("priority"), f"{where}.priority", 0, warnings):
        entry["priority"] = priority
    entry["order"] = _number(raw.get("insertion_order"), f"{where}.insertion_order", 100, warnings)
    depth = _number(extensions.get("scan_depth"), f"{where}.extensions.scan_depth", None, warnings,
                    most=_MOST_SCAN_DEPTH)
    if depth:
        entry["scan_depth"] = max(depth, 1)
    entry["content"] = to_template(content, name)
    return entry


def _extensions(card: Mapping[str, Any], data: Mapping[str, Any], warnings: list[str]
                ) -> dict[str, Any]:
    """The card's extensions, plus ``card``: every card field personae does not use."""
    extensions = data.get("extensions")
    kept: dict[str, Any] = dict(extensions) if isinstance(extensions, dict) else {}
    unused: dict[str, Any] = {k: v for k, v in data.items() if k not in _KNOWN_DATA_FIELDS}
    if card is not data:
        unused.update({k: v for k, v in card.items() if k != "data"})
    if extensions is not None and not isinstance(extensions, dict):
        warnings.append("extensions: expected an object; kept as extensions.card.extensions")
        unused["extensions"] = extensions
    book = data.get("character_book")
    if isinstance(book, dict):
        book_unused = {k: v for k, v in book.items()
                       if k not in ("entries", "scan_depth", "token_budget")}
        entry_extensions = {
            str(i): e["extensions"] for i, e in enumerate(book.get("entries") or [])
            if isinstance(e, dict) and e.get("extensions")
        }
        if entry_extensions:
            book_unused["entry_extensions"] = entry_extensions
        if book_unused:
            unused["character_book"] = book_unused
    if unused:
        kept["card"] = unused
    return _storable(kept, "extensions", warnings)


def _storable(value: Any, where: str, warnings: list[str]) -> Any:
    """``value`` with the numbers a persona file cannot hold (NaN, infinity, whole numbers
    past 64 bits) replaced by null, each with a warning."""
    if isinstance(value, dict):
        return {k: _storable(v, f"{where}.{k}", warnings) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v, f"{where}[{i}]", warnings) for i, v in enumerate(value)]
    if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE):
        warnings.append(f"{where}: {_shown(value)} cannot be kept in a persona file; "
                        "kept as null")
        return None
    return value
