"""Roles the platform did not send: looked up, or the rule that needs them refuses.

A message's author may come without roles (on Discord: messages read back from
history at catch-up, DMs, slash commands given in a DM). Where a persona's permission
rules (or config's admin roles) depend on roles, :class:`RoleLookup` asks the
platform's :class:`RoleResolver` within a deadline; when that fails the author stays
``roles_known=False`` and :func:`~core.dispatcher.permissions.permission_refusal`
refuses with ``roles_unknown``. Unknown roles never allow.

Which roles count: in a guild channel, the author's roles in that guild; in a DM, the
roles they hold in the servers the bot shares with them (a role id names one role of
one server, so a rule naming it means "has that role in its server"). Someone in no
shared server has no roles there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from ..config import AdminSettings
from ..personas.model import PermissionSpec, Persona
from .messages import InboundMessage

log = logging.getLogger(__name__)

LOOKUP_DEADLINE_S = 5.0
"""How long a message waits for its author's roles before the rules refuse it."""


class RoleResolver(Protocol):
    """A platform's way of finding out someone's roles (Discord: the member lookup)."""

    async def roles(self, user_id: str, guild_id: str | None,
                    wanted: frozenset[str]) -> frozenset[str]:
        """``user_id``'s roles in ``guild_id``; for a DM (``guild_id`` None), the roles
        they hold in the servers that define any of ``wanted``. Raises when that cannot
        be found out now."""
        ...


def needs_roles(author_id: str, permissions: PermissionSpec) -> bool:
    """Whether a persona's rules can only be decided with the author's roles."""
    return bool(permissions.deny_roles) or (
        bool(permissions.allow_roles) and author_id not in permissions.allow_users)


class RoleLookup:
    """Fills in unknown roles where some rule needs them (see the module docstring)."""

    def __init__(self, resolvers: dict[str, RoleResolver], admins: AdminSettings, *,
                 deadline_s: float = LOOKUP_DEADLINE_S) -> None:
        self._resolvers = resolvers
        self._admins = admins
        self._deadline_s = deadline_s

    async def complete(self, message: InboundMessage,
                       personas: Iterable[Persona]) -> InboundMessage:
        """``message`` with its author's roles looked up when they are unknown and the
        rules of one of ``personas`` need them; as it was when none does or the lookup
        fails."""
        author = message.author
        if author.roles_known or author.is_bot or author.id in self._admins.users:
            return message
        rules = [p.permissions for p in personas if needs_roles(author.id, p.permissions)]
        if not rules:
            return message
        return await self.lookup(message, frozenset(self._admins.roles).union(
            *(r.allow_roles | r.deny_roles for r in rules)))

    async def lookup(self, message: InboundMessage, wanted: frozenset[str]) -> InboundMessage:
        """``message`` with its author's roles looked up (where ``wanted`` roles count) if
        they are unknown; as it was when the lookup fails."""
        author = message.author
        resolver = self._resolvers.get(message.platform)
        if author.roles_known or resolver is None or not wanted:
            return message
        try:
            async with asyncio.timeout(self._deadline_s):
                roles = await resolver.roles(author.id, message.guild_id, wanted)
        except Exception as exc:  # any failure refuses, none allows
            log.warning("could not look up the roles of %s on %s (%s): rules that need "
                        "them refuse", author.id, message.platform, type(exc).__name__)
            return message
        return replace(message, author=replace(author, roles=frozenset(roles),
                                               roles_known=True))
