"""Slash commands: ``/ask``, ``/personas``, ``/reset``, ``/usage`` and ``/reload``.

``/ask`` goes through the dispatcher like any message (an explicit invocation of
one persona) and is answered as the command's response, deferred when the model
is slow. Refusals and permission failures are one private (ephemeral) line.
``/reset`` forgets the channel's conversation (for every persona in it: the log
has one conversation per channel). ``/reload`` is for the admins in config.yaml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import disnake
from disnake.ext import commands

from ...config import AdminSettings
from ...dispatcher.dispatcher import Dispatcher, PersonaSource
from ...dispatcher.messages import Author, InboundMessage
from ...personas.model import Persona
from ...problems import Problem
from .inbound import PLATFORM
from .interactions import InteractionReplies

AUTOCOMPLETE_CHOICES = 25
"""Discord shows at most 25 autocomplete choices."""

Reload = Callable[[], Awaitable[Sequence[Problem]]]
"""Reloads the personas and returns the problems found."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What the commands work with."""

    dispatcher: Dispatcher
    personas: PersonaSource
    interactions: InteractionReplies
    admins: AdminSettings
    reload: Reload | None = None


def register_commands(bot: commands.InteractionBot, ctx: CommandContext) -> None:
    """Add the slash commands to ``bot`` (disnake syncs them when it connects)."""

    @bot.slash_command(name="ask", description="Ask a persona something")
    async def ask(inter: disnake.ApplicationCommandInteraction,
                  persona: str = commands.Param(description="Who to ask"),
                  prompt: str = commands.Param(description="What to say")) -> None:
        chosen = find_persona(ctx.personas, persona)
        if chosen is None:
            await _private(inter, f"There is no persona called {persona!r}; /personas lists them.")
            return
        if not chosen.triggers.slash:
            await _private(inter, f"{chosen.name} does not answer slash commands.")
            return
        message = command_message(inter, prompt, chosen.id)
        ctx.interactions.expect(message.message_id, inter)
        result = await ctx.dispatcher.ingest(message)
        if result.rejected:
            await ctx.interactions.tell(message.message_id,
                                        refusal_line(chosen, result.rejected[0][1]))

    @ask.autocomplete("persona")
    async def persona_choices(inter: disnake.ApplicationCommandInteraction,
                              typed: str) -> dict[str, str]:
        wanted = typed.lower()
        matches = [p for p in ctx.personas.all() if p.triggers.slash and (
            p.id.lower().startswith(wanted) or p.name.lower().startswith(wanted)
            or wanted in p.name.lower())]
        return {_choice_label(p): p.id for p in matches[:AUTOCOMPLETE_CHOICES]}

    @bot.slash_command(name="personas", description="Who is here, and what they do")
    async def personas(inter: disnake.ApplicationCommandInteraction) -> None:
        lines = [_describe(p) for p in ctx.personas.all()] or ["No personas are loaded."]
        await _private(inter, _fit("\n".join(lines)))

    @bot.slash_command(name="reset", description="Forget this channel's conversation so far")
    async def reset(inter: disnake.ApplicationCommandInteraction,
                    persona: str | None = commands.Param(
                        default=None, description="Only check that this persona is here")
                    ) -> None:
        if persona is not None and find_persona(ctx.personas, persona) is None:
            await _private(inter, f"There is no persona called {persona!r}; /personas lists them.")
            return
        await ctx.dispatcher.reset_conversation(PLATFORM, str(inter.channel_id),
                                                str(inter.author.id), str(inter.id))
        await inter.response.send_message(
            f"{inter.author.display_name} reset the conversation: earlier messages here are "
            "forgotten.", allowed_mentions=disnake.AllowedMentions.none())

    reset.autocomplete("persona")(persona_choices)

    @bot.slash_command(name="usage", description="Your remaining quota and its next reset")
    async def usage(inter: disnake.ApplicationCommandInteraction,
                    persona: str | None = commands.Param(default=None,
                                                         description="Only this persona")
                    ) -> None:
        chosen = ctx.personas.all() if persona is None else [
            p for p in ctx.personas.all() if p is find_persona(ctx.personas, persona)]
        if not chosen:
            await _private(inter, f"There is no persona called {persona!r}; /personas lists them.")
            return
        message = command_message(inter, "", None)
        lines = []
        for p in chosen:
            line = await usage_line(ctx.dispatcher, p, message)
            if line:
                lines.append(line)
        await _private(inter, _fit("\n".join(lines) or "No limits apply to you here."))

    usage.autocomplete("persona")(persona_choices)

    @bot.slash_command(name="reload", description="Reload the persona files (admins only)")
    async def reload(inter: disnake.ApplicationCommandInteraction) -> None:
        if not is_admin(inter, ctx.admins):
            await _private(inter, "Only the bot's admins can run /reload.")
            return
        if ctx.reload is None:
            await _private(inter, "Reloading is not available in this process.")
            return
        await inter.response.defer(ephemeral=True)
        problems = await ctx.reload()
        names = ", ".join(p.name for p in ctx.personas.all()) or "none"
        text = f"Reloaded: {len(ctx.personas.all())} persona(s) serving ({names})."
        if problems:
            text += (f"\n{len(problems)} problem(s); the last good version of those "
                     "files keeps serving:\n" + "\n".join(f"- {p}" for p in problems))
        await inter.edit_original_response(content=_fit(text))


def find_persona(personas: PersonaSource, wanted: str) -> Persona | None:
    """The persona whose id or name is ``wanted`` (case-insensitive)."""
    key = wanted.strip().lower()
    return next((p for p in personas.all() if key in (p.id.lower(), p.name.lower())), None)


def command_message(inter: disnake.ApplicationCommandInteraction, text: str,
                    persona_id: str | None) -> InboundMessage:
    """A slash command as a neutral message (its id is the interaction's)."""
    channel = inter.channel
    guild = inter.guild
    author = inter.author
    parent = getattr(channel, "parent_id", None) if isinstance(channel, disnake.Thread) else None
    roles = frozenset(str(r.id) for r in getattr(author, "roles", ())
                      if guild is None or r.id != guild.id)
    return InboundMessage(
        platform=PLATFORM, message_id=str(inter.id), channel_id=str(inter.channel_id),
        author=Author(str(author.id), author.display_name, roles=roles), text=text,
        guild_id=str(inter.guild_id) if inter.guild_id else None,
        parent_channel_id=str(parent) if parent else None, is_dm=inter.guild_id is None,
        invoked_persona=persona_id, sent_at=inter.created_at.timestamp(),
        channel_name=getattr(channel, "name", None), guild_name=guild.name if guild else None)


def refusal_line(persona: Persona, reason: str) -> str:
    """The one line a user sees when ``persona`` will not answer them."""
    kind = reason.split(":")[0]
    if kind == "permission":
        return f"You can't talk to {persona.name} here."
    if kind == "rate_limited":
        return persona.delivery.rate_limited_notice
    if kind == "quota":
        return f"You've used your quota with {persona.name} for now; /usage shows when it resets."
    if kind == "busy":
        return persona.delivery.busy_notice
    return f"{persona.name} will not answer that ({kind})."


async def usage_line(dispatcher: Dispatcher, persona: Persona,
                     message: InboundMessage) -> str | None:
    """What is left of ``persona``'s limits for the author of ``message``."""
    parts = []
    status = await dispatcher.quota_status(persona.id, message)
    if status is not None:
        left = []
        if status.token_limit is not None:
            left.append(f"{status.tokens_left} of {status.token_limit} tokens")
        if status.message_limit is not None:
            left.append(f"{status.messages_left} of {status.message_limit} replies")
        when = (f"<t:{int(status.next_reset.timestamp())}:R>" if status.next_reset else "never")
        parts.append(f"{' and '.join(left)} left per {status.scope}, next reset {when}")
    tokens = dispatcher.rate_tokens(persona.id, message)
    if tokens is not None:
        parts.append(f"{int(tokens)} message(s) available right now")
    return f"**{persona.name}**: {'; '.join(parts)}" if parts else None


def is_admin(inter: disnake.ApplicationCommandInteraction, admins: AdminSettings) -> bool:
    """True for the users and roles config.yaml lists under ``admins``."""
    if str(inter.author.id) in admins.users:
        return True
    return any(str(r.id) in admins.roles for r in getattr(inter.author, "roles", ()))


async def _private(inter: disnake.ApplicationCommandInteraction, text: str) -> None:
    await inter.response.send_message(text, ephemeral=True,
                                      allowed_mentions=disnake.AllowedMentions.none())


def _describe(persona: Persona) -> str:
    line = f"**{persona.name}** (`{persona.id}`)"
    return f"{line}: {persona.description.strip()}" if persona.description.strip() else line


def _choice_label(persona: Persona) -> str:
    label = persona.name if persona.name.lower() == persona.id.lower() else \
        f"{persona.name} ({persona.id})"
    return label[:100]


def _fit(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit - 2] + " …"
