"""The commands people give personae, for every platform: ask, greet, personas, reset,
usage, reload, forget. Discord's slash commands and the terminal's ``/commands`` both call these;
each platform only turns its own input into a :class:`Caller` and shows the
:class:`CommandReply` (privately where it can).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventstore import LogUnavailable

from .config import AdminSettings
from .dispatcher.admission import PersonaSource
from .dispatcher.dispatcher import Dispatcher
from .dispatcher.greetings import GreetingOutcome, GreetingRequest
from .dispatcher.messages import Author, InboundMessage
from .dispatcher.permissions import is_admin
from .events import Refusal, RefusalKind
from .events.conversation import RESET_CHANNEL, RESET_USER
from .limits.quotas import QuotaStatus
from .personas.model import Persona
from .privacy.ledger import LedgerError
from .problems import Problem

Reload = Callable[[], Awaitable[Sequence[Problem]]]
"""Reloads the personas and returns the problems found."""

MESSAGE_LIMIT = 2000
"""The longest reply a command gives (Discord's message limit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who gave a command, where: what the rules about people and places need."""

    platform: str
    command_id: str
    """Unique per command (the interaction id; the terminal's own counter)."""
    author: Author
    channel_id: str
    guild_id: str | None = None
    parent_channel_id: str | None = None
    is_dm: bool = False
    channel_name: str | None = None
    guild_name: str | None = None
    sent_at: float | None = None
    channel_nsfw: bool | None = None
    """Whether the platform marks the channel age-restricted (None: it does not say)."""

    def greeting(self) -> GreetingRequest:
        """A greeting asked for with this command, where it was given."""
        return GreetingRequest(
            platform=self.platform, channel_id=self.channel_id, greeting_id=self.command_id,
            author_id=self.author.id, author_name=self.author.display_name,
            channel_name=self.channel_name, guild_name=self.guild_name,
            guild_id=self.guild_id, is_dm=self.is_dm)

    def message(self, text: str, persona_id: str | None) -> InboundMessage:
        """The command as a neutral message to ``persona_id`` (its id is the command's)."""
        return InboundMessage(
            platform=self.platform, message_id=self.command_id, channel_id=self.channel_id,
            author=self.author, text=text, guild_id=self.guild_id,
            parent_channel_id=self.parent_channel_id, is_dm=self.is_dm,
            invoked_persona=persona_id, sent_at=self.sent_at or time.time(),
            channel_name=self.channel_name, guild_name=self.guild_name,
            channel_nsfw=self.channel_nsfw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What one persona's limits leave a caller: the quota (None: it has none) and the
    rate-limit tokens (None: no limit, or a full bucket never used)."""

    persona: Persona
    quota: QuotaStatus | None
    rate_tokens: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply:
    """What a command answers: one text, private to the caller unless ``public``."""

    text: str
    public: bool = False


class Style(Protocol):
    """How a platform writes emphasis and identifiers."""

    def bold(self, text: str) -> str:
        """``text`` emphasised."""
        ...

    def code(self, text: str) -> str:
        """``text`` as an identifier to type."""
        ...


class PlainStyle:
    """No markup (the terminal)."""

    def bold(self, text: str) -> str:
        """``text`` as it is."""
        return text

    def code(self, text: str) -> str:
        """``text`` as it is."""
        return text


UNRECORDED = CommandReply(text="I can't take that in right now: the bot cannot record "
                                "anything (its disk may be full). Please try again in a "
                                "little while.")
"""The answer to a command the log could not record (nothing happened)."""


def find_persona(personas: PersonaSource, wanted: str) -> Persona | None:
    """The persona whose id or name is ``wanted`` (case-insensitive)."""
    key = wanted.strip().lower()
    return next((p for p in personas.all() if key in (p.id.lower(), p.name.lower())), None)


def refusal_line(persona: Persona, reason: Refusal) -> str:
    """The one line a user sees when ``persona`` will not answer them."""
    kind = reason.kind
    if kind == RefusalKind.PERMISSION and reason.detail == "roles_unknown":
        return (f"I couldn't check your roles for {persona.name} just now; "
                "please try again in a moment.")
    if kind == RefusalKind.PERMISSION:
        return f"You can't talk to {persona.name} here."
    if kind == RefusalKind.RATE_LIMITED:
        return persona.delivery.rate_limited_notice
    if kind == RefusalKind.QUOTA:
        return f"You've used your quota with {persona.name} for now; /usage shows when it resets."
    if kind == RefusalKind.BUSY:
        return persona.delivery.busy_notice
    if kind == RefusalKind.AGE_RESTRICTED:
        return persona.delivery.age_restricted_notice
    return f"{persona.name} will not answer that ({kind.value})."


def greeting_line(persona: Persona, outcome: GreetingOutcome) -> str:
    """What the person who asked for a greeting is told."""
    if outcome.posted:
        return f"{persona.name} greeted with greeting {outcome.choice} of {outcome.count}."
    return outcome.reason or f"{persona.name}'s greeting could not be posted."


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[:limit - 2] + " …"


class CommandSet:
    """The commands, over one dispatcher and persona registry."""

    def __init__(self, *, dispatcher: Dispatcher, personas: PersonaSource,
                 admins: AdminSettings, reload: Reload | None = None) -> None:
        self._dispatcher = dispatcher
        self._personas = personas
        self._admins = admins
        self._reload = reload

    def find(self, wanted: str) -> Persona | None:
        """The persona ``wanted`` names (id or name, any case)."""
        return find_persona(self._personas, wanted)

    def all_personas(self) -> Sequence[Persona]:
        """Every serving persona (for completing names as they are typed)."""
        return self._personas.all()

    def unknown(self, wanted: str) -> CommandReply:
        """The answer to a persona name that names nobody."""
        return CommandReply(text=f"There is no persona called {wanted!r}; /personas lists them.")

    async def ask(self, caller: Caller, wanted: str, prompt: str, *,
                  before: Callable[[InboundMessage], None] | None = None) -> CommandReply | None:
        """Ask ``wanted`` something: the persona answers through the dispatcher like any
        message. Returns the line to show the caller now (a refusal), or None (the answer
        comes as the persona's reply). ``before`` sees the message before it is taken in."""
        persona = self.find(wanted)
        if persona is None:
            return self.unknown(wanted)
        if not persona.triggers.slash:
            return CommandReply(text=f"{persona.name} does not answer slash commands.")
        message = caller.message(prompt, persona.id)
        if before is not None:
            before(message)
        try:
            result = await self._dispatcher.ingest(message)
        except LogUnavailable:
            return UNRECORDED
        if result.rejected:
            return CommandReply(text=refusal_line(persona, result.rejected[0][1]))
        return None

    async def usable(self, caller: Caller) -> list[Persona]:
        """The personas ``caller`` may talk to where they are (the same permission rules
        as a message, roles looked up where the platform did not send them)."""
        decided = await self._dispatcher.allowed(caller.message("", None), self._personas.all())
        return [persona for persona, refusal in decided if refusal is None]

    async def greet(self, caller: Caller, wanted: str, which: int | None = None, *,
                    only_if_new: bool = False) -> CommandReply:
        """Post ``wanted``'s greeting number ``which`` (None: one at random) where
        ``caller`` is, as the persona's message (part of the conversation from then on).
        With ``only_if_new``, only where the persona has not spoken since the last reset.
        Only for someone who may talk to the persona here."""
        persona = self.find(wanted)
        if persona is None:
            return self.unknown(wanted)
        ((_, refusal),) = await self._dispatcher.allowed(caller.message("", None), [persona])
        if refusal is not None:
            return CommandReply(text=refusal_line(persona, refusal))
        outcome = await self._dispatcher.greet(caller.greeting(), persona.id, choice=which,
                                               only_if_new=only_if_new)
        return CommandReply(text=greeting_line(persona, outcome))

    async def personas(self, caller: Caller, style: Style) -> CommandReply:
        """Who is here for ``caller`` (only personas they may talk to), and what they do."""
        if not self._personas.all():
            return CommandReply(text="No personas are loaded.")
        lines = [_describe(p, style) for p in await self.usable(caller)] or [
            "No persona here will talk with you."]
        return CommandReply(text=fit("\n".join(lines)))

    async def reset(self, caller: Caller, wanted: str | None = None) -> CommandReply:
        """A fresh start where ``caller`` is. Only for someone who may talk to ``wanted``
        (or, without it, to some persona) here. An admin's reset, and any reset of a DM,
        clears the whole conversation for every persona; anyone else's clears only their
        own earlier messages and the replies to them (others' conversation goes on)."""
        message = caller.message("", None)
        if wanted is not None:
            persona = self.find(wanted)
            if persona is None:
                return self.unknown(wanted)
            ((_, refusal),) = await self._dispatcher.allowed(message, [persona])
            if refusal is not None:
                return CommandReply(text=refusal_line(persona, refusal))
        elif not await self.usable(caller):
            return CommandReply(text="You can't talk to any persona here, so there is "
                                     "nothing of yours to reset.")
        whole = caller.is_dm or await self.is_admin(caller)
        try:
            await self._dispatcher.reset_conversation(
                caller.platform, caller.channel_id, caller.author.id, caller.command_id,
                scope=RESET_CHANNEL if whole else RESET_USER)
        except LogUnavailable:
            return UNRECORDED
        if whole:
            return CommandReply(text=f"{caller.author.display_name} reset the conversation: "
                                     "earlier messages here are forgotten.", public=True)
        return CommandReply(text="You reset the conversation for yourself: your earlier "
                                 "messages here and the replies to them are forgotten; the "
                                 "others' conversation goes on.")

    async def usage(self, caller: Caller, wanted: str | None) -> list[Usage] | CommandReply:
        """What is left of each persona's limits (or ``wanted``'s) for ``caller``; the
        platform words it (a persona name that names nobody gets the answer to show)."""
        message = caller.message("", None)
        if wanted is None:
            chosen: Sequence[Persona] = await self.usable(caller)
        else:
            persona = self.find(wanted)
            if persona is None:
                return self.unknown(wanted)
            ((_, refusal),) = await self._dispatcher.allowed(message, [persona])
            if refusal is not None:
                return CommandReply(text=refusal_line(persona, refusal))
            chosen = [persona]
        return [Usage(persona=p, quota=await self._dispatcher.quota_status(p.id, message),
                      rate_tokens=await self._dispatcher.rate_tokens(p.id, message))
                for p in chosen]

    async def is_admin(self, caller: Caller) -> bool:
        """Whether ``caller`` is one of the bot's admins, by id or by a role (looked up
        when the platform did not send their roles)."""
        if caller.author.id in self._admins.users or not self._admins.roles:
            return caller.author.id in self._admins.users
        message = await self._dispatcher.look_up_roles(caller.message("", None),
                                                       frozenset(self._admins.roles))
        return is_admin(message.author, self._admins)

    async def reload_refusal(self, caller: Caller) -> CommandReply | None:
        """Why ``caller`` cannot reload here (None: they can)."""
        if not await self.is_admin(caller):
            return CommandReply(text="Only the bot's admins can run /reload.")
        if self._reload is None:
            return CommandReply(text="Reloading is not available in this process.")
        return None

    async def forget(self, caller: Caller, user: str) -> CommandReply:
        """Erase everything ``user`` (an id or a mention) wrote or that quotes them
        (admins only): their keys are destroyed, their content reads back as [erased]
        everywhere, and the erasure is recorded (who asked, when, whom)."""
        if not await self.is_admin(caller):
            return CommandReply(text="Only the bot's admins can run /forget.")
        subject = user_id_of(user)
        if not subject or any(c.isspace() for c in subject):
            return CommandReply(text="Name one user to forget: their id, or a mention.")
        try:
            await self._dispatcher.forget(subject, requested_by=caller.author.id,
                                          requested_id=caller.command_id)
        except LogUnavailable:
            return UNRECORDED
        except LedgerError as exc:
            return CommandReply(text=f"Forgot {subject}, but {exc}: restoring an older backup "
                                     "would not know of it.")
        return CommandReply(text=f"Forgot {subject}: everything they wrote, and the replies "
                                 "to them, now reads back as [erased]. The erasure is "
                                 "recorded.")

    async def reload(self, caller: Caller) -> CommandReply:
        """Reload the persona files (admins only)."""
        refusal = await self.reload_refusal(caller)
        if refusal is not None:
            return refusal
        assert self._reload is not None  # reload_refusal refuses when it is None
        problems = await self._reload()
        serving = self._personas.all()
        names = ", ".join(p.name for p in serving) or "none"
        text = f"Reloaded: {len(serving)} persona(s) serving ({names})."
        if problems:
            text += (f"\n{len(problems)} problem(s); the last good version of those "
                     "files keeps serving:\n" + "\n".join(f"- {p}" for p in problems))
        return CommandReply(text=fit(text))


_MENTION = re.compile(r"^<@!?([0-9]+)>$")


def user_id_of(text: str) -> str:
    """The user id ``text`` names: an id, or a mention (``<@123>``) of one."""
    text = text.strip()
    found = _MENTION.match(text)
    return found.group(1) if found else text


def _describe(persona: Persona, style: Style) -> str:
    line = f"{style.bold(persona.name)} ({style.code(persona.id)})"
    return f"{line}: {persona.description.strip()}" if persona.description.strip() else line
