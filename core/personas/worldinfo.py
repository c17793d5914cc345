"""Lorebooks from character cards and SillyTavern World Info files, as persona lorebooks.

Two shapes carry the same entries: a card's ``character_book`` (Character Card V2/V3:
``keys``, ``insertion_order``, ``use_regex``, and SillyTavern's settings in each entry's
``extensions``), and a standalone World Info file (``{"entries": {"0": {...}}}``, the
same settings in camelCase: ``key``, ``keysecondary``, ``order``, ``disable``...).
Both map onto :class:`~core.personas.model.LoreEntry`; every setting personae has no
use for, or can only approximate, is a warning naming the field, and entry settings
with no persona field at all are kept (:func:`unmapped`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..patterns import PatternError, compile_regex
from .macros import Macros

MOST_SCAN_DEPTH = 1000
"""The persona schema's maxima, so that an imported lorebook validates."""
MOST_TOKEN_BUDGET = 2_000_000
_INT_RANGE = range(-(2**63), 2**63)
_SELECTIVE_LOGIC = {0: "and_any", 1: "not_all", 2: "not_any", 3: "and_all"}
_ROLES = {0: "system", 1: "user", 2: "assistant"}
_JS_REGEX = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)
_METACHARACTERS = re.compile(r"[\\^$.|?*+()\[\]{}]")
_AUTHORS_NOTE_DEPTH = 4  # SillyTavern's default depth of the author's note

# World Info (camelCase) names -> the card entry's (snake_case, V2 or its extensions)
_WORLD_INFO_NAMES = {
    "key": "keys", "keysecondary": "secondary_keys", "comment": "comment",
    "order": "insertion_order", "caseSensitive": "case_sensitive",
    "matchWholeWords": "match_whole_words", "excludeRecursion": "exclude_recursion",
    "preventRecursion": "prevent_recursion", "delayUntilRecursion": "delay_until_recursion",
    "scanDepth": "scan_depth", "groupOverride": "group_override",
    "groupWeight": "group_weight", "useGroupScoring": "use_group_scoring",
    "automationId": "automation_id", "displayIndex": "display_index",
    "ignoreBudget": "ignore_budget", "outletName": "outlet_name",
    "characterFilter": "character_filter", "matchPersonaDescription":
    "match_persona_description", "matchCharacterDescription": "match_character_description",
    "matchCharacterPersonality": "match_character_personality",
    "matchCharacterDepthPrompt": "match_character_depth_prompt",
    "matchScenario": "match_scenario", "matchCreatorNotes": "match_creator_notes",
}
_MAPPED = frozenset({
    "position", "exclude_recursion", "display_index", "probability", "useProbability",
    "depth", "selectiveLogic", "group", "group_override", "group_weight",
    "prevent_recursion", "delay_until_recursion", "scan_depth", "match_whole_words",
    "use_group_scoring", "case_sensitive", "automation_id", "role", "vectorized", "sticky",
    "cooldown", "delay", "match_persona_description", "match_character_description",
    "match_character_personality", "match_character_depth_prompt", "match_scenario",
    "match_creator_notes", "triggers", "ignore_budget", "outlet_name", "character_filter",
    "addMemo", "weight", "uid", "selective",
})
"""Entry settings this module reads (or warns about): all the others are kept."""


def from_world_info(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A World Info entry in the card entry's shape (settings under ``extensions``)."""
    entry: dict[str, Any] = {"extensions": {}}
    for key, value in raw.items():
        name = _WORLD_INFO_NAMES.get(key, key)
        if name in ("keys", "secondary_keys", "comment", "content", "constant", "selective",
                    "insertion_order", "case_sensitive", "name", "priority", "id"):
            entry[name] = value
        elif name == "disable":
            entry["enabled"] = not value if isinstance(value, bool) else value
        elif name in ("uid", "addMemo", "displayIndex"):
            continue
        else:
            entry["extensions"][name] = value
    return entry


def lore_entry(raw: Mapping[str, Any], where: str, macros: Macros, warnings: list[str]
               ) -> dict[str, Any] | None:
    """A persona lorebook entry from a card entry ``raw`` (None when it has no content)."""
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        warnings.append(f"{where}: no content; skipped")
        return None
    ext: Mapping[str, Any] = raw["extensions"] if isinstance(raw.get("extensions"), dict) else {}
    entry: dict[str, Any] = {}
    label = raw.get("name") or raw.get("comment")
    if isinstance(label, str) and label:
        entry["name"] = label
    keys = strings(raw.get("keys"), f"{where}.keys", warnings)
    constant = flag(raw.get("constant"), f"{where}.constant", False, warnings)
    enabled = flag(raw.get("enabled"), f"{where}.enabled", True, warnings)
    if not keys and not constant:
        if enabled:
            warnings.append(f"{where}: no keys and not constant, so it could never activate; "
                            "imported disabled")
        enabled = False
    secondary = strings(raw.get("secondary_keys"), f"{where}.secondary_keys", warnings)
    keys, secondary, regex, sensitive = _regex_keys(raw, ext, keys, secondary, where, warnings)
    entry["keys"] = keys
    if secondary and flag(raw.get("selective"), f"{where}.selective", True, warnings):
        entry["secondary_keys"] = secondary
        logic = number(ext.get("selectiveLogic"), f"{where}.extensions.selectiveLogic", 0,
                       warnings)
        entry["selective_logic"] = _SELECTIVE_LOGIC.get(logic or 0, "and_any")
    if regex:
        entry["regex"] = True
        for key in keys + secondary:
            try:
                compile_regex(key, case_sensitive=True)
            except PatternError as exc:
                warnings.append(f"{where}: {key!r} is not a valid regex ({exc}); imported "
                                "disabled")
                entry["regex"] = False
                enabled = False
    if sensitive:
        entry["case_sensitive"] = True
    if ext.get("match_whole_words") is False:
        entry["whole_words"] = False
    if constant:
        entry["constant"] = True
    if not enabled:
        entry["enabled"] = False
    if priority := number(raw.get("priority"), f"{where}.priority", 0, warnings):
        entry["priority"] = priority
    if (order := number(raw.get("insertion_order"), f"{where}.insertion_order", 100,
                        warnings)) != 100:
        entry["order"] = order
    depth = number(ext.get("scan_depth"), f"{where}.extensions.scan_depth", None, warnings,
                   most=MOST_SCAN_DEPTH)
    if depth:
        entry["scan_depth"] = max(depth, 1)
    entry.update(_placement(raw, ext, where, warnings))
    entry.update(_chances_and_timing(ext, where, warnings))
    _unsupported(ext, where, warnings)
    entry["content"] = macros.template(content, f"{where}.content")
    return entry


def unmapped(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's extension settings no persona field carries (kept for other tools)."""
    ext = raw.get("extensions")
    if not isinstance(ext, dict):
        return {}
    return {k: v for k, v in ext.items() if k not in _MAPPED}


def _regex_keys(raw: Mapping[str, Any], ext: Mapping[str, Any], keys: list[str],
                secondary: list[str], where: str, warnings: list[str]
                ) -> tuple[list[str], list[str], bool, bool]:
    """(keys, secondary keys, regex, case sensitive): SillyTavern writes regex keys as
    ``/pattern/flags`` among plain ones; a persona entry's keys are all one or the other."""
    regex = flag(raw.get("use_regex"), f"{where}.use_regex", False, warnings)
    sensitive = flag(raw.get("case_sensitive"), f"{where}.case_sensitive", False, warnings) \
        or ext.get("case_sensitive") is True
    written = [k for k in keys + secondary if _JS_REGEX.match(k)]
    if not written:
        # SillyTavern marks every exported entry use_regex (its keys may be regexes):
        # keys with nothing of a regex in them are plain keys, matched as SillyTavern does
        if regex and not any(_METACHARACTERS.search(k) for k in keys + secondary):
            regex = False
        return keys, secondary, regex, sensitive
    flags = {m.group(2) for k in written if (m := _JS_REGEX.match(k))}
    plain = [k for k in keys + secondary if not _JS_REGEX.match(k)]
    if plain:
        warnings.append(f"{where}.keys: plain keys beside /regex/ ones became regular "
                        "expressions matching them as written")

    def convert(key: str) -> str:
        match = _JS_REGEX.match(key)
        return match.group(1) if match else re.escape(key)

    ignoring_case = {"i" in f for f in flags}
    if ignoring_case == {True, False}:
        warnings.append(f"{where}.keys: regex keys with and without the i flag; all are "
                        "matched ignoring case")
    sensitive = ignoring_case == {False}  # JavaScript regexes respect case unless told
    return [convert(k) for k in keys], [convert(k) for k in secondary], True, sensitive


def _placement(raw: Mapping[str, Any], ext: Mapping[str, Any], where: str,
               warnings: list[str]) -> dict[str, Any]:
    """Where the entry goes: SillyTavern's position number (extensions), else the card's
    ``position`` (before_char / after_char)."""
    position = ext.get("position")
    if not isinstance(position, int) or isinstance(position, bool):
        written = raw.get("position")
        position = 0 if written == "before_char" else 1
    depth = number(ext.get("depth"), f"{where}.extensions.depth", _AUTHORS_NOTE_DEPTH,
                   warnings, most=MOST_SCAN_DEPTH) or 0
    role = _ROLES.get(number(ext.get("role"), f"{where}.extensions.role", 0, warnings) or 0,
                      "system")
    if position == 0:
        return {"position": "before_system"}
    if position in (1, 5):  # after the character; before the examples: the same place here
        return {}
    if position == 6:
        return {"position": "after_examples"}
    if position == 4:
        placed: dict[str, Any] = {"position": "at_depth", "depth": max(depth, 0)}
        if role != "system":
            placed["role"] = role
        return placed
    if position in (2, 3):
        warnings.append(f"{where}.extensions.position: {position} (the author's note) has no "
                        f"equivalent; placed at depth {_AUTHORS_NOTE_DEPTH} (where "
                        "SillyTavern puts the author's note by default)")
        return {"position": "at_depth", "depth": _AUTHORS_NOTE_DEPTH}
    warnings.append(f"{where}.extensions.position: {position!r} (an outlet or unknown place) "
                    "has no equivalent; placed after the system prompt")
    return {}


def _chances_and_timing(ext: Mapping[str, Any], where: str, warnings: list[str]
                        ) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if flag(ext.get("useProbability"), f"{where}.extensions.useProbability", True, warnings):
        chance = number(ext.get("probability"), f"{where}.extensions.probability", 100, warnings)
        if chance is not None and chance < 100:
            found["probability"] = max(chance, 0)
    for name in ("exclude_recursion", "prevent_recursion"):
        if flag(ext.get(name), f"{where}.extensions.{name}", False, warnings):
            found[name] = True
    delayed = ext.get("delay_until_recursion")
    if delayed is True or (isinstance(delayed, int | float) and not isinstance(delayed, bool)
                           and delayed > 0):
        found["delay_until_recursion"] = True
        if not isinstance(delayed, bool) and delayed > 1:
            warnings.append(f"{where}.extensions.delay_until_recursion: recursion level "
                            f"{delayed} approximated as any recursion")
    for name in ("sticky", "cooldown"):
        value = number(ext.get(name), f"{where}.extensions.{name}", 0, warnings,
                       most=MOST_SCAN_DEPTH)
        if value and value > 0:
            found[name] = value
    if (delay := number(ext.get("delay"), f"{where}.extensions.delay", 0, warnings)) and \
            delay > 0:
        warnings.append(f"{where}.extensions.delay: {delay} is not supported (the entry may "
                        "activate from the first message)")
    return found


def _unsupported(ext: Mapping[str, Any], where: str, warnings: list[str]) -> None:
    if isinstance(ext.get("group"), str) and ext["group"].strip():
        warnings.append(f"{where}.extensions.group: inclusion groups are not supported; "
                        f"every entry of the group {ext['group']!r} may be inserted")
    if isinstance(ext.get("automation_id"), str) and ext["automation_id"].strip():
        warnings.append(f"{where}.extensions.automation_id: automations are not supported; "
                        "dropped")
    if ext.get("vectorized") is True:
        warnings.append(f"{where}.extensions.vectorized: there is no vector matching; the "
                        "entry activates by its keys only")
    if ext.get("ignore_budget") is True:
        warnings.append(f"{where}.extensions.ignore_budget: not supported; the entry counts "
                        "against the budget")
    for name in ("match_persona_description", "match_character_description",
                 "match_character_personality", "match_character_depth_prompt",
                 "match_scenario", "match_creator_notes"):
        if ext.get(name) is True:
            warnings.append(f"{where}.extensions.{name}: keys are looked for in the "
                            "conversation only")
    character_filter = ext.get("character_filter")
    if isinstance(character_filter, dict) and (character_filter.get("names")
                                               or character_filter.get("tags")):
        warnings.append(f"{where}.extensions.character_filter: not supported; the entry "
                        "serves every persona that includes it")
    if isinstance(ext.get("triggers"), list) and ext["triggers"]:
        warnings.append(f"{where}.extensions.triggers: generation-type filters are not "
                        "supported; the entry serves every reply")


# -- reading card values leniently --------------------------------------------------------


def strings(value: Any, where: str, warnings: list[str]) -> list[str]:
    """A list of texts from a card field, repaired with a warning when it is not one."""
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


def number(value: Any, where: str, default: int | None, warnings: list[str], *,
           most: int = _INT_RANGE.stop - 1) -> int | None:
    """A whole number from a card field, at most ``most``; a repair (with a warning) for
    anything else, ``Infinity`` and ``"1e999"`` included."""
    if value is None:
        return default
    if isinstance(value, bool):
        warnings.append(f"{where}: expected a number, got {value!r}; used {default!r}")
        return default
    whole_number = value
    if isinstance(value, str):
        try:
            whole_number = float(value)
        except ValueError:
            warnings.append(f"{where}: expected a number, got {value!r}; used {default!r}")
            return default
    if not isinstance(whole_number, int | float):
        warnings.append(f"{where}: expected a number, got {type(value).__name__}; "
                        f"used {default!r}")
        return default
    if isinstance(whole_number, float) and not math.isfinite(whole_number):
        warnings.append(f"{where}: {value!r} is not a usable number; used {default!r}")
        return default
    whole = int(whole_number)
    if not _INT_RANGE.start <= whole <= most:
        kept = min(max(whole, _INT_RANGE.start), most)
        warnings.append(f"{where}: {shown(value)} is out of range; used {kept}")
        return kept
    return whole


def flag(value: Any, where: str, default: bool, warnings: list[str]) -> bool:
    """True or false from a card field, the default (with a warning) for anything else."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    warnings.append(f"{where}: expected true or false, got {value!r}; used {default}")
    return default


def shown(value: Any) -> str:
    """``value`` short enough for a warning."""
    text = repr(value)
    return text if len(text) <= 30 else text[:26] + "..."
