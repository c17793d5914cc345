"""A loaded persona written back in the persona file's own vocabulary (``per: 60s``,
``reply_deadline: 45s``, ``token_budget: 25%``), every default applied: what ``personae
personas show`` prints. Lorebook entries show the settings they set (an entry's other
settings are the defaults the authoring guide lists); included lorebook files are named,
not copied."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import yaml

from ..durations import format_duration
from .model import LoreEntry, Persona

_ENTRY_DEFAULTS = LoreEntry(content="")


def persona_document(persona: Persona) -> dict[str, Any]:
    """``persona`` as the mapping a persona file would hold to make it."""
    model, prompt = persona.model, persona.prompt
    document: dict[str, Any] = {"id": persona.id, "name": persona.name}
    if persona.avatar_url:
        document["avatar_url"] = persona.avatar_url
    if persona.description:
        document["description"] = persona.description
    if persona.notes:
        document["notes"] = persona.notes
    if persona.tags:
        document["tags"] = list(persona.tags)
    document["model"] = _set({
        "provider": model.provider, "name": model.name, "temperature": model.temperature,
        "max_tokens": model.max_tokens, "top_p": model.top_p,
        "frequency_penalty": model.frequency_penalty, "presence_penalty": model.presence_penalty,
        "stop": list(model.stop) or None, "seed": model.seed, "extra": dict(model.extra) or None,
        "fallback": ({"provider": model.fallback.provider, "name": model.fallback.name}
                     if model.fallback else None)})
    document["prompt"] = _set({
        "system": prompt.system,
        "examples": [{"user": e.user, "assistant": e.assistant} for e in prompt.examples] or None,
        "post_history": prompt.post_history, "greeting": prompt.greeting,
        "alternate_greetings": list(prompt.alternate_greetings) or None})
    context = persona.context
    document["context"] = {"scope": context.scope, "max_messages": context.max_messages,
                           "max_tokens": context.max_tokens,
                           "include_other_personas": context.include_other_personas}
    triggers = persona.triggers
    document["triggers"] = {
        "mention": triggers.mention, "dm": triggers.dm, "reply": triggers.reply,
        "keywords": list(triggers.keywords), "patterns": [p.pattern for p in triggers.patterns],
        "case_sensitive": triggers.case_sensitive, "channels": _ids(triggers.channels),
        "slash": triggers.slash,
        "thread": (_set({"after_turns": triggers.thread.after_turns,
                         "after_chars": triggers.thread.after_chars})
                   if triggers.thread else None),
        "from_personas": sorted(triggers.from_personas), "max_hops": triggers.max_hops}
    limits = persona.limits
    document["limits"] = _set({
        "rate": ({"capacity": limits.rate.capacity, "per": format_duration(limits.rate.per_s),
                  "scope": limits.rate.scope} if limits.rate else None),
        "quota": (_set({"tokens": limits.quota.tokens, "messages": limits.quota.messages,
                        "scope": limits.quota.scope, "reset": limits.quota.reset,
                        "timezone": limits.quota.timezone}) if limits.quota else None),
        "max_concurrent": limits.max_concurrent,
        "reply_deadline": format_duration(limits.reply_deadline_s)}, keep=("rate", "quota"))
    permissions = persona.permissions
    document["permissions"] = {
        name: _ids(getattr(permissions, name)) for name in (
            "allow_users", "deny_users", "allow_roles", "deny_roles", "allow_channels",
            "deny_channels")} | {"dms": permissions.dms}
    delivery = persona.delivery
    mentions = delivery.allowed_mentions
    document["delivery"] = {
        "webhook": delivery.webhook, "stream_edits": delivery.stream_edits,
        "allowed_mentions": {"users": mentions.users, "roles": mentions.roles,
                             "everyone": mentions.everyone,
                             "replied_user": mentions.replied_user},
        "failure_notice": delivery.failure_notice, "busy_notice": delivery.busy_notice,
        "rate_limited_notice": delivery.rate_limited_notice,
        "quota_notice": delivery.quota_notice}
    book = persona.lorebook
    if book.entries or book.include:
        document["lorebook"] = _set({
            "include": list(book.include) or None, "scan_depth": book.scan_depth,
            "token_budget": (book.token_budget if book.token_budget is not None
                             else f"{book.context_share * 100:g}%"),
            "recursive": book.recursive,
            "entries": [_entry(e) for e in book.entries[:len(book.entries) - _included(persona)]]})
    if persona.extensions:
        document["extensions"] = dict(persona.extensions)
    return document


def _included(persona: Persona) -> int:
    """How many of the lorebook's entries come from the files it includes (listed last)."""
    count = 0
    for text in persona.included.values():
        data = yaml.safe_load(text)  # it loaded: plain data
        count += len(data.get("entries") or []) if isinstance(data, dict) else 0
    return count


def _entry(entry: LoreEntry) -> dict[str, Any]:
    found: dict[str, Any] = {"name": entry.name} if entry.name else {}
    for spec in fields(LoreEntry):
        value = getattr(entry, spec.name)
        if spec.name in ("content", "name") or value == getattr(_ENTRY_DEFAULTS, spec.name):
            continue
        found[spec.name] = list(value) if isinstance(value, tuple) else value
    found["content"] = entry.content
    return found


def _set(values: dict[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """``values`` without the unset ones (None), except those in ``keep`` (``rate: null``
    says there is no rate limit)."""
    kept = set(keep)
    return {k: v for k, v in values.items() if v is not None or k in kept}


def _ids(values: Iterable[str]) -> list[str]:
    return sorted(values)
