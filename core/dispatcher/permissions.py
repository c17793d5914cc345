"""Who may talk to a persona, where: the persona's permission lists and config's admins.

Deny rules win over allow rules. Empty allow-lists allow everyone; the user and
role allow-lists together form one rule (being in either is enough). In DMs the
channel lists do not apply; ``dms: false`` refuses DMs. Admins (config.yaml) and the
operator at the terminal pass every permission rule; rate limits and quotas still
apply to them. Roles the platform did not send are never taken as "no roles": a rule
that needs them refuses with ``roles_unknown`` unless they were looked up
(:mod:`~core.dispatcher.roles`).
"""

from __future__ import annotations

from ..config import AdminSettings
from ..personas.model import PermissionSpec
from .messages import Author, InboundMessage
from .roles import needs_roles


def is_admin(author: Author, admins: AdminSettings) -> bool:
    """Whether ``author`` is an admin by user id or by one of their (known) roles (the
    operator at the terminal is one too)."""
    return author.operator or author.id in admins.users or bool(author.roles & admins.roles)


def permission_refusal(
    message: InboundMessage, permissions: PermissionSpec, admins: AdminSettings
) -> str | None:
    """None when ``message``'s author may talk to the persona here, else the rule
    that refuses (``user_denied``, ``roles_unknown``, ``role_denied``,
    ``channel_denied``, ``dms_disabled``, ``not_allowed``, ``channel_not_allowed``)."""
    author = message.author
    if is_admin(author, admins):
        return None
    if author.id in permissions.deny_users:
        return "user_denied"
    if not author.roles_known and needs_roles(author.id, permissions):
        return "roles_unknown"
    if author.roles & permissions.deny_roles:
        return "role_denied"
    channels = {message.channel_id} | ({message.parent_channel_id} - {None})
    if message.is_dm:
        if not permissions.dms:
            return "dms_disabled"
    elif channels & permissions.deny_channels:
        return "channel_denied"
    if (permissions.allow_users or permissions.allow_roles) and not (
        author.id in permissions.allow_users or author.roles & permissions.allow_roles
    ):
        return "not_allowed"
    if not message.is_dm and permissions.allow_channels and not (
        channels & permissions.allow_channels
    ):
        return "channel_not_allowed"
    return None
