"""Character Card V2/V3 (JSON, or PNG with a ``chara``/``ccv3`` text chunk) -> persona YAML,
and SillyTavern World Info files -> lorebook files personas include.

Cards in the wild are often a little broken ("" where a number belongs, ``null``
strings, keys as one comma-separated string). Such cards import with a warning per
repair; only a file that holds no card at all is refused. Every card field that is
dropped or approximated is a warning naming the field, too.

Cards come from strangers, so every size is capped before it can cost anything
(the caps below; each refusal says which): the file, a compressed text chunk as it
inflates (incrementally, never past the cap), the JSON's nesting, each text field
and the persona made. Numbers JSON cannot hold (``NaN``, ``Infinity``, ``1e999``)
are repairs with a warning; text that is not valid Unicode (a lone surrogate such
as ``\ud800``) is refused, naming the field.

Card macros become persona template variables (:mod:`core.personas.macros`); every
other brace is escaped so the text renders exactly as written. Creator notes go to
``notes`` (never prompted). ``extensions`` keeps the card's own extension data and,
under ``card``, the card fields no persona field carries (the creator, the version...):
never a second copy of the card's text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyascii import anyascii

from ..problems import Problem, ProblemsError
from .includes import LOREBOOK_DIR
from .macros import Macros
from .model import Lorebook
from .worldinfo import (
    MOST_SCAN_DEPTH,
    MOST_TOKEN_BUDGET,
    flag,
    from_world_info,
    lore_entry,
    number,
    shown,
    strings,
    unmapped,
)
from .yamlout import dump_yaml

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
# Not \s*: it spans newlines, so each of a million blank lines would rescan the rest.
_START = re.compile(r"^[^\S\n]*<START>[^\S\n]*$", re.IGNORECASE | re.MULTILINE)
_TURN = re.compile(r"^\s*(\{\{\s*(?:char|user)\s*\}\}|<BOT>|<USER>)\s*:\s?", re.IGNORECASE)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_PROMPT_FIELDS = frozenset({
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings",
    "character_book", "tags", "extensions",
})
"""Card fields some persona field carries."""
_V1_COPIES = frozenset({
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creatorcomment", "creator_notes", "avatar", "chat", "talkativeness", "fav", "tags",
    "create_date", "system_prompt", "post_history_instructions", "alternate_greetings",
    "character_book", "extensions",
})
"""Top-level fields of a V2/V3 card that repeat its data (for V1 readers) or are a
chat program's bookkeeping (the avatar file, the chat file, when it was made)."""
_BOOK_FIELDS = frozenset({"entries", "scan_depth", "token_budget", "recursive_scanning"})
MODELINE = "# yaml-language-server: $schema=./persona.schema.json"
LORE_SHARE = Lorebook().context_share
"""The share of the context a lorebook may use by default (SillyTavern's default too)."""


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


@dataclass(frozen=True, slots=True)
class ImportedLorebook:
    """A World Info file turned into a lorebook file (``personas/lorebooks/NAME.yaml``)."""

    name: str
    data: Mapping[str, Any]
    warnings: tuple[str, ...] = ()

    def to_yaml(self, source: str) -> str:
        """The lorebook file text: how to use it, then the entries."""
        return (f"# Imported from the World Info file {source}. A persona adds these "
                f"entries with:\n#   lorebook: {{include: [{self.name}]}}\n"
                + dump_yaml(dict(self.data)))


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
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGE = range(-(2**63), 2**63)
_CONTEXT_STEP = 1024


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


def is_world_info(document: Mapping[str, Any]) -> bool:
    """Whether a JSON object read by :func:`read_card` is a World Info file (a lorebook
    of its own) rather than a character card."""
    return (isinstance(document.get("entries"), dict | list)
            and not any(k in document for k in ("spec", "data", "first_mes", "char_name")))


def card_to_persona(
    card: Mapping[str, Any], *, persona_id: str | None = None, source: str = "<card>",
    file_stem: str | None = None, estimate_tokens: Callable[[str], int] | None = None,
    context_tokens: int = 3000,
) -> ImportedCard:
    """Turn a V1, V2 or V3 card into persona data (``model`` is left to persona_defaults).
    Raises ProblemsError (naming ``source``) only when there is no usable card.

    The id is ``persona_id``, else the name transliterated to ASCII, else ``file_stem``.
    With ``estimate_tokens``, ``context.max_tokens`` is raised from ``context_tokens``
    when the card's text or lorebook entries need more (saying so)."""
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
    persona_id = persona_id or slug(name, fallback=file_stem)
    description = fields.text("description")
    macros = Macros(warnings, fields={"description": description,
                                      "personality": fields.text("personality"),
                                      "scenario": fields.text("scenario")})

    persona: dict[str, Any] = {"id": persona_id, "name": name}
    if summary := _summary(macros.plain(description, name)):
        persona["description"] = summary
    if notes := fields.text("creator_notes").strip():
        persona["notes"] = notes
    if tags := fields.strings("tags"):
        persona["tags"] = tags
    persona["prompt"] = _prompt(fields, macros, description, warnings)
    lorebook = _lorebook(data.get("character_book"), macros, warnings)
    extensions, depth_entry = _extensions(card, data, macros, warnings)
    if depth_entry is not None:
        lorebook.setdefault("entries", []).append(depth_entry)
    if lorebook:
        persona["lorebook"] = lorebook
    if estimate_tokens is not None:
        _fit_context(persona, estimate_tokens, context_tokens, warnings)
    if extensions:
        persona["extensions"] = extensions
    return ImportedCard(persona_id, name, persona, tuple(warnings))


def world_info_to_lorebook(document: Mapping[str, Any], *, name: str | None = None,
                           file_stem: str | None = None) -> ImportedLorebook:
    """Turn a SillyTavern World Info file (or a card's ``character_book`` on its own) into
    lorebook file data, named ``name`` (else after the book's name or ``file_stem``)."""
    warnings: list[str] = []
    raw_entries = document.get("entries")
    if isinstance(raw_entries, dict):
        items = [v for _, v in sorted(raw_entries.items(), key=lambda kv: _display_index(kv))]
    else:
        items = list(raw_entries or [])
    book_name = document.get("name") if isinstance(document.get("name"), str) else None
    lorebook_id = name or slug(book_name or "", fallback=file_stem, default="lorebook")
    macros = Macros(warnings)
    entries = []
    for i, raw in enumerate(items):
        where = f"entries[{i}]"
        if not isinstance(raw, dict):
            warnings.append(f"{where}: expected an object; skipped")
            continue
        card_shaped = from_world_info(raw) if "key" in raw or "uid" in raw else raw
        if entry := lore_entry(card_shaped, where, macros, warnings):
            entries.append(entry)
    data: dict[str, Any] = {}
    if book_name:
        data["name"] = book_name
    if isinstance(document.get("description"), str) and document["description"].strip():
        data["description"] = document["description"]
    data["entries"] = _storable(entries, "entries", warnings)
    return ImportedLorebook(lorebook_id, data, tuple(warnings))


def lorebook_file(directory: Path, name: str) -> Path:
    """Where the lorebook called ``name`` lives, for personas in ``directory``."""
    return directory / LOREBOOK_DIR / f"{name}.yaml"


def slug(name: str, *, fallback: str | None = None, default: str = "character") -> str:
    """A persona id made from a display name, in any script: ``"Seraphina the Bold"`` ->
    ``seraphina-the-bold``, ``"艾琳娜"`` -> ``ailinna`` (transliterated); ``fallback``
    (a file name, say) when nothing is left, then ``default``."""
    for text in (name, fallback or ""):
        made = _SLUG_JUNK.sub("-", anyascii(text).lower()).strip("-")[:64].strip("-")
        if made:
            return made
    return default


def to_template(text: str, char_name: str | None = None) -> str:
    """Card text as a persona template: macros become variables, other braces are escaped.
    With ``char_name``, the text is for people instead: ``{{char}}`` is that name."""
    macros = Macros([])
    return macros.plain(text, char_name) if char_name is not None else \
        macros.template(text, "text")


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
        return strings(self.data.get(key), key, self.warnings)


# -- building --------------------------------------------------------------------------


def _summary(description: str) -> str:
    first = description.strip().split("\n", 1)[0].strip()
    return first if len(first) <= 160 else first[:157].rstrip() + "..."


def _prompt(fields: _Fields, macros: Macros, description: str, warnings: list[str]
            ) -> dict[str, Any]:
    parts = []
    default_system = "You are {persona}. Stay in character and reply as {persona} would."
    if system := fields.text("system_prompt").strip():
        pieces = _ORIGINAL.split(system)
        parts.append(default_system.join(macros.template(p, "system_prompt") for p in pieces))
    else:
        parts.append(default_system)
    if description.strip():
        parts.append(macros.template(description.strip(), "description"))
    if personality := fields.text("personality").strip():
        parts.append(f"{{persona}}'s personality: {macros.template(personality, 'personality')}")
    if scenario := fields.text("scenario").strip():
        parts.append(f"Scenario: {macros.template(scenario, 'scenario')}")
    prompt: dict[str, Any] = {"system": "\n\n".join(parts) + "\n"}
    if examples := _examples(fields.text("mes_example"), macros, warnings):
        prompt["examples"] = examples
    if post := fields.text("post_history_instructions").strip():
        prompt["post_history"] = macros.template(post, "post_history_instructions")
    if greeting := fields.text("first_mes").strip():
        prompt["greeting"] = macros.template(greeting, "first_mes")
    alternates = [macros.template(g, f"alternate_greetings[{i}]")
                  for i, g in enumerate(fields.strings("alternate_greetings")) if g.strip()]
    if alternates:
        prompt["alternate_greetings"] = alternates
    group_only = fields.data.get("group_only_greetings")
    if isinstance(group_only, list) and group_only:
        warnings.append(f"group_only_greetings: {len(group_only)} greeting(s) for group chats "
                        "dropped (personae has no group chats)")
    return prompt


def _examples(text: str, macros: Macros, warnings: list[str]) -> list[dict[str, str]]:
    examples: list[dict[str, str]] = []
    for number_, block in enumerate(b for b in _START.split(text) if b.strip()):
        where = f"mes_example block {number_ + 1}"
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
                examples.append({"user": macros.template(pending_user, where),
                                 "assistant": macros.template(said.strip(), where)})
                pending_user = None
            else:
                dropped += 1
        dropped += pending_user is not None
        if not turns:
            warnings.append(f"{where}: no {{{{user}}}}:/{{{{char}}}}: lines; skipped")
        elif dropped:
            warnings.append(f"{where}: {dropped} turn(s) without a partner (examples are "
                            "user/assistant pairs); skipped")
    return [e for e in examples if e["assistant"]]


def _lorebook(book: Any, macros: Macros, warnings: list[str]) -> dict[str, Any]:
    if not book:
        return {}
    if not isinstance(book, dict):
        warnings.append("character_book: expected an object; ignored")
        return {}
    lorebook: dict[str, Any] = {}
    if (depth := number(book.get("scan_depth"), "character_book.scan_depth", None, warnings,
                        most=MOST_SCAN_DEPTH)):
        lorebook["scan_depth"] = max(depth, 1)
    budget = number(book.get("token_budget"), "character_book.token_budget", None, warnings,
                    most=MOST_TOKEN_BUDGET)
    if budget:
        lorebook["token_budget"] = max(budget, 1)
    if flag(book.get("recursive_scanning"), "character_book.recursive_scanning", False,
            warnings):
        lorebook["recursive"] = True
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
        if entry := lore_entry(raw, where, macros, warnings):
            entries.append(entry)
    lorebook["entries"] = entries
    return lorebook


def _extensions(card: Mapping[str, Any], data: Mapping[str, Any], macros: Macros,
                warnings: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The card's extensions (less what a persona field now carries), plus ``card``: the
    card fields no persona field carries; and the character's note (``depth_prompt``)
    as a lorebook entry."""
    extensions = data.get("extensions")
    kept: dict[str, Any] = dict(extensions) if isinstance(extensions, dict) else {}
    depth_entry = _depth_prompt(kept.pop("depth_prompt", None), macros, warnings)
    if isinstance(kept.get("world"), str) and kept["world"].strip():
        warnings.append(f"extensions.world: the card names the World Info file "
                        f"{kept['world']!r}: import it too (personae personas import FILE) and "
                        "add it to this persona's lorebook.include")
    if kept.get("regex_scripts"):
        warnings.append("extensions.regex_scripts: SillyTavern's regex scripts are not "
                        "supported; kept in extensions, not run")
    unused: dict[str, Any] = {k: v for k, v in data.items() if k not in _PROMPT_FIELDS
                              and k != "group_only_greetings"}
    if card is not data:
        unused.update({k: v for k, v in card.items() if k != "data" and k not in _V1_COPIES})
    if "assets" in unused:
        warnings.append("assets: the card's images are not imported (set avatar_url to an "
                        "image's URL)")
    if unused.get("nickname"):
        warnings.append("nickname: not used ({persona} is the name); kept in extensions.card")
    if extensions is not None and not isinstance(extensions, dict):
        warnings.append("extensions: expected an object; kept as extensions.card.extensions")
        unused["extensions"] = extensions
    book = data.get("character_book")
    if isinstance(book, dict):
        book_unused = {k: v for k, v in book.items() if k not in _BOOK_FIELDS}
        entry_extensions = {
            str(i): found for i, e in enumerate(book.get("entries") or [])
            if isinstance(e, dict) and (found := unmapped(e))
        }
        if entry_extensions:
            book_unused["entry_extensions"] = entry_extensions
        if book_unused:
            unused["character_book"] = book_unused
    if unused:
        kept["card"] = unused
    return _storable(kept, "extensions", warnings), depth_entry


def _depth_prompt(found: Any, macros: Macros, warnings: list[str]) -> dict[str, Any] | None:
    """SillyTavern's character's note (``extensions.depth_prompt``: a text inserted at a
    depth of every prompt) as a constant lorebook entry there."""
    if not isinstance(found, dict) or not isinstance(found.get("prompt"), str) or \
            not found["prompt"].strip():
        return None
    depth = number(found.get("depth"), "extensions.depth_prompt.depth", 4, warnings,
                   most=MOST_SCAN_DEPTH) or 0
    role = found.get("role") if found.get("role") in ("system", "user", "assistant") else "system"
    warnings.append(f"extensions.depth_prompt: imported as a constant lorebook entry at "
                    f"depth {max(depth, 0)}")
    entry: dict[str, Any] = {"name": "character's note", "constant": True,
                             "position": "at_depth", "depth": max(depth, 0),
                             "content": macros.template(found["prompt"],
                                                        "extensions.depth_prompt.prompt")}
    if role != "system":
        entry["role"] = role
    return entry


def _fit_context(persona: dict[str, Any], estimate: Callable[[str], int], context_tokens: int,
                 warnings: list[str]) -> None:
    """Raise ``context.max_tokens`` when the card's text would leave the history no room,
    or its lorebook's largest entry could not fit the lorebook's share of the context;
    drop a card budget smaller than the largest entry (SillyTavern ignores it too)."""
    prompt = persona["prompt"]
    fixed = estimate(prompt["system"]) + sum(
        estimate(e["user"]) + estimate(e["assistant"]) for e in prompt.get("examples", [])
    ) + estimate(prompt.get("post_history") or "")
    lorebook = persona.get("lorebook") or {}
    sizes = [estimate(e["content"]) for e in lorebook.get("entries", [])
             if e.get("enabled", True) and not (e.get("constant") and e.get("position")
                                                 == "at_depth" and e.get("name")
                                                 == "character's note")]
    largest = max(sizes, default=0)
    budget = lorebook.get("token_budget")
    if budget is not None and budget < largest:
        warnings.append(f"character_book.token_budget: {budget:,} tokens cannot hold the "
                        f"largest entry (about {largest:,} tokens); used the default, "
                        f"{LORE_SHARE:.0%} of context.max_tokens (SillyTavern ignores a card's "
                        "budget too)")
        del lorebook["token_budget"]
        budget = None
    needed = 2 * fixed + 1000  # the card's text at most half of the prompt
    if largest and budget is None:  # room for its two largest entries at once
        needed = max(needed, math.ceil(sum(sorted(sizes)[-2:]) / LORE_SHARE))
    if needed <= context_tokens:
        return
    size = -(-needed // _CONTEXT_STEP) * _CONTEXT_STEP
    persona["context"] = {"max_tokens": size}
    reasons = [f"the card's text is about {fixed:,} tokens"]
    if largest:
        reasons.append(f"its largest lorebook entries about {largest:,} each, and lore may "
                       f"use {LORE_SHARE:.0%} of the context, as in SillyTavern")
    warnings.append(f"context.max_tokens: set to {size:,} (from {context_tokens:,}): "
                    f"{'; '.join(reasons)}; lower it to spend fewer tokens per reply")


def _display_index(item: tuple[str, Any]) -> tuple[float, str]:
    key, value = item
    index = value.get("displayIndex") if isinstance(value, dict) else None
    if isinstance(index, int | float) and not isinstance(index, bool):
        return float(index), key
    return (float(key) if key.isdigit() else math.inf), key


def _storable(value: Any, where: str, warnings: list[str]) -> Any:
    """``value`` with the numbers a persona file cannot hold (NaN, infinity, whole numbers
    past 64 bits) replaced by null, each with a warning."""
    if isinstance(value, dict):
        return {k: _storable(v, f"{where}.{k}", warnings) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v, f"{where}[{i}]", warnings) for i, v in enumerate(value)]
    if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE):
        warnings.append(f"{where}: {shown(value)} cannot be kept in a persona file; "
                        "kept as null")
        return None
    return value
