"""Slash commands: ``/ask``, ``/greet``, ``/personas``, ``/reset``, ``/usage``, ``/reload``
and ``/forget``.

Each is the shared command of :mod:`core.commands`; this module turns an interaction
into a :class:`~core.commands.Caller` and shows the answer, privately (ephemeral)
unless it is meant for the channel. ``/ask`` goes through the dispatcher like any
message (an explicit invocation of one persona) and is answered as the command's
response, deferred when the model is slow.
"""

from __future__ import annotations

import disnake
from disnake.ext import commands
from disnake.interactions import ApplicationCommandInteraction

from ...commands import Caller, CommandReply, CommandSet, Usage, fit
from ...dispatcher.messages import Author
from ...personas.model import Persona
from .inbound import PLATFORM, channel_nsfw, member_roles
from .interactions import InteractionReplies

AUTOCOMPLETE_CHOICES = 25
"""Discord shows at most 25 autocomplete choices."""


class DiscordStyle:
    """Markdown emphasis and code."""

    def bold(self, text: str) -> str:
        """``**text**``."""
        return f"**{text}**"

    def code(self, text: str) -> str:
        """```text```."""
        return f"`{text}`"


def register_commands(bot: commands.InteractionBot | commands.AutoShardedInteractionBot,
                      commands_: CommandSet,
                      interactions: InteractionReplies) -> None:
    """Add the slash commands to ``bot`` (disnake syncs them when it connects)."""
    style = DiscordStyle()

    @bot.slash_command(name="ask", description="Ask a persona something")
    async def ask(inter: ApplicationCommandInteraction,
                  persona: str = commands.Param(description="Who to ask"),
                  prompt: str = commands.Param(description="What to say")) -> None:
        caller = command_caller(inter)
        refused = await commands_.ask(caller, persona, prompt,
                                      before=lambda m: interactions.expect(m.message_id, inter))
        if refused is None:
            return
        if not await interactions.tell(caller.command_id, refused.text):
            await _show(inter, refused)

    @ask.autocomplete("persona")
    async def persona_choices(inter: ApplicationCommandInteraction,
                              typed: str) -> dict[str, str]:
        wanted = typed.lower()
        usable = await commands_.usable(command_caller(inter))
        matches = [p for p in usable if p.triggers.slash and (
            p.id.lower().startswith(wanted) or p.name.lower().startswith(wanted)
            or wanted in p.name.lower())]
        return {_choice_label(p): p.id for p in matches[:AUTOCOMPLETE_CHOICES]}

    @bot.slash_command(name="greet", description="Post a persona's greeting here")
    async def greet(inter: ApplicationCommandInteraction,
                    persona: str = commands.Param(description="Who greets"),
                    which: int | None = commands.Param(
                        default=None, ge=1, le=100,
                        description="Which greeting: 1 is the first, 2 and on the alternates "
                                    "(default: one at random)")) -> None:
        caller = command_caller(inter)
        await inter.response.defer(ephemeral=True)
        answer = await commands_.greet(caller, persona, which)
        await inter.edit_original_response(content=answer.text)

    greet.autocomplete("persona")(persona_choices)

    @bot.slash_command(name="personas", description="Who is here, and what they do")
    async def personas(inter: ApplicationCommandInteraction) -> None:
        await _show(inter, await commands_.personas(command_caller(inter), style))

    @bot.slash_command(name="reset",
                       description="Forget your conversation here so far (admins: everyone's)")
    async def reset(inter: ApplicationCommandInteraction,
                    persona: str | None = commands.Param(
                        default=None, description="Only if you may talk to this persona")
                    ) -> None:
        await _show(inter, await commands_.reset(command_caller(inter), persona))

    reset.autocomplete("persona")(persona_choices)

    @bot.slash_command(name="usage", description="Your remaining quota and its next reset")
    async def usage(inter: ApplicationCommandInteraction,
                    persona: str | None = commands.Param(default=None,
                                                         description="Only this persona")
                    ) -> None:
        found = await commands_.usage(command_caller(inter), persona)
        if isinstance(found, CommandReply):
            await _show(inter, found)
            return
        lines = [line for usage in found if (line := usage_line(usage))]
        await _show(inter, CommandReply(text=fit("\n".join(lines) or
                                                 "No limits apply to you here.")))

    usage.autocomplete("persona")(persona_choices)

    @bot.slash_command(name="forget",
                       description="Erase everything a person wrote (admins only)")
    async def forget(inter: ApplicationCommandInteraction,
                     user: str = commands.Param(description="Their user id, or a mention")
                     ) -> None:
        caller = command_caller(inter)
        await inter.response.defer(ephemeral=True)
        answer = await commands_.forget(caller, user)
        await inter.edit_original_response(content=answer.text)

    @bot.slash_command(name="reload", description="Reload the persona files (admins only)")
    async def reload(inter: ApplicationCommandInteraction) -> None:
        caller = command_caller(inter)
        refusal = await commands_.reload_refusal(caller)
        if refusal is not None:
            await _show(inter, refusal)
            return
        await inter.response.defer(ephemeral=True)
        answer = await commands_.reload(caller)
        await inter.edit_original_response(content=answer.text)


def usage_line(usage: Usage) -> str | None:
    """One persona's limits for the caller, as a Discord line (resets as timestamps that
    each reader sees in their own time zone)."""
    parts = []
    status = usage.quota
    if status is not None:
        left = []
        if status.token_limit is not None:
            left.append(f"{status.tokens_left} of {status.token_limit} tokens")
        if status.message_limit is not None:
            left.append(f"{status.messages_left} of {status.message_limit} replies")
        when = f"<t:{int(status.next_reset.timestamp())}:R>" if status.next_reset else "never"
        parts.append(f"{' and '.join(left)} left per {status.scope}, next reset {when}")
    if usage.rate_tokens is not None:
        parts.append(f"{int(usage.rate_tokens)} message(s) available right now")
    return f"**{usage.persona.name}**: {'; '.join(parts)}" if parts else None


def command_caller(inter: ApplicationCommandInteraction) -> Caller:
    """Who gave the slash command, where (its id is the interaction's)."""
    channel = inter.channel
    guild = inter.guild
    author = inter.author
    parent = getattr(channel, "parent_id", None) if isinstance(channel, disnake.Thread) else None
    roles = member_roles(author, guild)
    return Caller(
        platform=PLATFORM, command_id=str(inter.id),
        author=Author(id=str(author.id), display_name=author.display_name,
                      roles=roles or frozenset(), roles_known=roles is not None),
        channel_id=str(inter.channel_id),
        guild_id=str(inter.guild_id) if inter.guild_id else None,
        parent_channel_id=str(parent) if parent else None, is_dm=inter.guild_id is None,
        channel_name=getattr(channel, "name", None), guild_name=guild.name if guild else None,
        sent_at=inter.created_at.timestamp(), channel_nsfw=channel_nsfw(channel))


async def _show(inter: ApplicationCommandInteraction, answer: CommandReply) -> None:
    await inter.response.send_message(answer.text, ephemeral=not answer.public,
                                      allowed_mentions=disnake.AllowedMentions.none())


def _choice_label(persona: Persona) -> str:
    label = persona.name if persona.name.lower() == persona.id.lower() else \
        f"{persona.name} ({persona.id})"
    return label[:100]
