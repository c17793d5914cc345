"""Which mentions in a message actually ping, following Discord's allowed_mentions rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


@dataclass(frozen=True)
class MentionedInContent:
    user_ids: tuple[int, ...]
    role_ids: tuple[int, ...]
    everyone: bool


@dataclass(frozen=True)
class MentionRights:
    """What the sender may ping regardless of what it writes."""

    mention_everyone: bool
    mentionable_role_ids: frozenset[int]


@dataclass(frozen=True)
class ResolvedMentions:
    user_ids: tuple[int, ...]
    role_ids: tuple[int, ...]
    everyone: bool


def parse_content(content: str) -> MentionedInContent:
    return MentionedInContent(
        user_ids=tuple(dict.fromkeys(int(m) for m in _USER.findall(content))),
        role_ids=tuple(dict.fromkeys(int(m) for m in _ROLE.findall(content))),
        everyone=bool(_EVERYONE.search(content)),
    )


def resolve(
    content: str,
    allowed_mentions: Mapping[str, Any] | None,
    rights: MentionRights,
    *,
    replied_user_id: int | None,
) -> ResolvedMentions:
    """The users, roles and @everyone the message pings.

    Without ``allowed_mentions`` everything written pings (and the replied-to author);
    with it only what ``parse``/``users``/``roles``/``replied_user`` allow, as on Discord.
    """
    written = parse_content(content)
    if allowed_mentions is None:
        parse = {"users", "roles", "everyone"}
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied = True
    else:
        parse = set(allowed_mentions.get("parse") or ())
        allowed_users = {int(u) for u in allowed_mentions.get("users") or ()}
        allowed_roles = {int(r) for r in allowed_mentions.get("roles") or ()}
        replied = bool(allowed_mentions.get("replied_user", False))
    users = [u for u in written.user_ids if "users" in parse or u in allowed_users]
    if replied and replied_user_id is not None and replied_user_id not in users:
        users.append(replied_user_id)
    roles = [
        r
        for r in written.role_ids
        if ("roles" in parse or r in allowed_roles)
        and (rights.mention_everyone or r in rights.mentionable_role_ids)
    ]
    everyone = written.everyone and "everyone" in parse and rights.mention_everyone
    return ResolvedMentions(tuple(users), tuple(roles), everyone)
