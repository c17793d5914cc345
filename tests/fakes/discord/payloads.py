"""Discord JSON for the emulator's records, in the shapes disnake 2.12 reads."""

from __future__ import annotations

from typing import Any

from .model import (
    DM,
    ApplicationCommand,
    Attachment,
    Channel,
    Interaction,
    Member,
    Message,
    Role,
    User,
    Webhook,
)
from .world import World

_NO_COLORS = {"primary_color": 0, "secondary_color": None, "tertiary_color": None}


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.username,
        "global_name": u.global_name,
        "discriminator": "0",
        "avatar": u.avatar,
        "bot": u.bot,
        "public_flags": 0,
    }


def role(r: Role) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(r.id),
        "name": r.name,
        "color": 0,
        # disnake 2.12 drops the whole guild when a role lacks `colors`
        "colors": dict(_NO_COLORS),
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed_by_bot_id is not None,
        "mentionable": r.mentionable,
        "flags": 0,
    }
    if r.managed_by_bot_id is not None:
        data["tags"] = {"bot_id": str(r.managed_by_bot_id)}
    return data


def member(world: World, m: Member, *, with_user: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roles": [str(r) for r in m.role_ids],
        "joined_at": m.joined_at,
        "nick": None,
        "avatar": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
    }
    if with_user:
        data["user"] = user(world.users[m.user_id])
    return data


def channel(world: World, c: Channel) -> dict[str, Any]:
    if c.type == DM:
        return {
            "id": str(c.id),
            "type": DM,
            "last_message_id": None,
            "recipients": [user(world.users[r]) for r in c.recipient_ids],
        }
    data: dict[str, Any] = {
        "id": str(c.id),
        "type": c.type,
        "guild_id": str(c.guild_id),
        "name": c.name,
        "position": c.position,
        "parent_id": str(c.parent_id) if c.parent_id else None,
        "nsfw": c.nsfw,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
        "permission_overwrites": [
            {
                "id": str(o.target_id),
                "type": 1 if o.is_member else 0,
                "allow": str(o.allow),
                "deny": str(o.deny),
            }
            for o in c.permission_overwrites
        ],
    }
    if c.is_thread:
        del data["nsfw"]  # Discord sends none for threads: they take their parent's
        data.update(
            owner_id=str(c.owner_id),
            message_count=0,
            member_count=1,
            total_message_sent=0,
            thread_metadata={
                "archived": False,
                "auto_archive_duration": c.auto_archive_duration,
                "archive_timestamp": "2020-01-01T00:00:00+00:00",
                "locked": False,
                "invitable": True,
                "create_timestamp": None,
            },
        )
    return data


def guild_create(world: World, guild_id: int) -> dict[str, Any]:
    guild = world.guilds[guild_id]
    members = world.guild_members(guild_id)
    channels = world.guild_channels(guild_id)
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "features": [],
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "joined_at": world.members[(guild_id, world.bot_user.id)].joined_at,
        "large": False,
        "unavailable": False,
        "member_count": len(members),
        "roles": [role(r) for r in world.guild_roles(guild_id)],
        "emojis": [],
        "stickers": [],
        "members": [member(world, m) for m in members],
        "channels": [channel(world, c) for c in channels if not c.is_thread],
        "threads": [channel(world, c) for c in channels if c.is_thread],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def attachment(world: World, channel_id: int, a: Attachment) -> dict[str, Any]:
    """An attachment object as Discord documents it: signed, expiring CDN links."""
    data: dict[str, Any] = {
        "id": str(a.id),
        "filename": a.filename,
        "size": a.size,
        "url": world.links.url(channel_id, a),
        "proxy_url": world.links.url(channel_id, a, media=True),
    }
    if a.content_type is not None:
        data["content_type"] = a.content_type
    if a.width is not None and a.height is not None:
        data["width"], data["height"] = a.width, a.height
    return data


def message(
    world: World, m: Message, *, nested: bool = True, shape: str = "rest"
) -> dict[str, Any]:
    """A message as Discord shows it, by source. ``shape="dispatch"``: a gateway
    MESSAGE_CREATE/UPDATE, the only shape carrying the author's ``member`` (guild
    messages by people) and the ``nonce``; ``"created"``: the answer to a create, with
    the ``nonce`` but no ``member``; ``"rest"``: history and fetched messages, neither."""
    dispatch = shape == "dispatch"
    author = user(m.author)
    if m.webhook_id is not None and m.interaction_id is None:
        author["discriminator"] = "0000"
        author["bot"] = True
    data: dict[str, Any] = {
        "id": str(m.id),
        "channel_id": str(m.channel_id),
        "author": author,
        "content": m.content,
        "timestamp": m.timestamp,
        "edited_timestamp": m.edited_timestamp,
        "tts": m.tts,
        "mention_everyone": m.mention_everyone,
        "mentions": [user(world.users[u]) for u in m.mention_user_ids],
        "mention_roles": [str(r) for r in m.mention_role_ids],
        "attachments": [attachment(world, m.channel_id, a) for a in m.attachments],
        "embeds": [dict(e) for e in m.embeds],
        "pinned": False,
        "type": m.type,
        "flags": m.flags,
        "components": [],
    }
    if m.guild_id is not None:
        data["guild_id"] = str(m.guild_id)
        guild_member = world.members.get((m.guild_id, m.author.id))
        if dispatch and guild_member is not None and m.webhook_id is None:
            data["member"] = member(world, guild_member, with_user=False)
    if shape in ("dispatch", "created") and m.nonce is not None:
        data["nonce"] = m.nonce
    if m.webhook_id is not None:
        data["webhook_id"] = str(m.webhook_id)
    if m.application_id is not None:
        data["application_id"] = str(m.application_id)
    if m.interaction_id is not None:
        interaction = world.interactions[m.interaction_id]
        data["interaction_metadata"] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": user(world.users[interaction.user_id]),
            "authorizing_integration_owners": {},
            "name": interaction.command.name,
        }
    if m.reference_id is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": str(m.reference_id),
            "channel_id": str(m.channel_id),
            "guild_id": str(m.guild_id) if m.guild_id else None,
        }
        if nested:
            referenced = world.messages.get(m.reference_id)
            data["referenced_message"] = (
                message(world, referenced, nested=False)
                if referenced is not None and not referenced.deleted
                else None
            )
    return data


def webhook(world: World, w: Webhook, *, with_token: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(w.id),
        "type": 1,
        "guild_id": str(w.guild_id),
        "channel_id": str(w.channel_id),
        "name": w.name,
        "avatar": w.avatar,
        "application_id": None,
        "user": user(world.users[w.creator_id]),
    }
    if with_token:
        data["token"] = w.token
    return data


def application_command(c: ApplicationCommand, application_id: int) -> dict[str, Any]:
    data = {
        "description": "",
        "options": [],
        "default_member_permissions": None,
        "dm_permission": True,
        "nsfw": False,
        "contexts": None,
        "integration_types": [0],
        "name_localizations": None,
        "description_localizations": None,
        **c.payload,
    }
    data.update(
        id=str(c.id),
        application_id=str(application_id),
        type=c.type,
        version=str(c.id),
    )
    if c.guild_id is not None:
        data["guild_id"] = str(c.guild_id)
    return data


def interaction(world: World, i: Interaction, application_id: int) -> dict[str, Any]:
    options = []
    for option in i.command.options:
        if option.name in i.options:
            entry: dict[str, Any] = {
                "name": option.name,
                "type": option.type,
                "value": i.options[option.name],
            }
            if i.focused == option.name:
                entry["focused"] = True
            options.append(entry)
    command_data: dict[str, Any] = {
        "id": str(i.command.id),
        "name": i.command.name,
        "type": i.command.type,
        "options": options,
    }
    if i.command.guild_id is not None:
        command_data["guild_id"] = str(i.command.guild_id)
    channel_record = world.channel(i.channel_id)
    data: dict[str, Any] = {
        "id": str(i.id),
        "application_id": str(application_id),
        "type": i.type,
        "token": i.token,
        "version": 1,
        "locale": "en-US",
        "attachment_size_limit": 10 * 1024 * 1024,
        "channel_id": str(i.channel_id),
        "channel": channel(world, channel_record),
        "data": command_data,
        "app_permissions": str(world.permissions(world.bot_user.id, channel_record)),
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(i.guild_id)} if i.guild_id else {},
        "context": 0 if i.guild_id else 1,
    }
    if i.guild_id is not None:
        author = member(world, world.members[(i.guild_id, i.user_id)])
        author["permissions"] = str(world.permissions(i.user_id, channel_record))
        data["guild_id"] = str(i.guild_id)
        data["guild_locale"] = "en-US"
        data["member"] = author
    else:
        data["user"] = user(world.users[i.user_id])
    return data
