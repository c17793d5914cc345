"""The template variables of one message, as the reply pipeline and greetings render
them (what each is: :data:`core.personas.prompt.VARIABLES`)."""

from __future__ import annotations

from collections.abc import Sequence

from ..events import MessageReceived, ModelReplied, PersonaGreeted, Typed
from ..personas.prompt import message_variables

DM_CHANNEL = "DM"
"""``{channel}`` in a direct message."""
DM_GUILD = "Direct Messages"
"""``{guild}`` in a direct message (what Discord calls them)."""


def conversation_variables(*, source: object | None, events: Sequence[Typed], author_id: str,
                           channel_id: str, is_dm: bool, now: float, seed: str
                           ) -> dict[str, str]:
    """The variables for answering ``source`` (the event holding the message answered:
    a MessageReceived, or another persona's ModelReplied), with ``events`` the
    conversation's recent events (for the channel's names and the quiet spell)."""
    speaker = ""
    named: MessageReceived | None = source if isinstance(source, MessageReceived) else None
    if isinstance(source, MessageReceived):
        speaker = source.author_name
    elif isinstance(source, ModelReplied | PersonaGreeted):
        speaker = source.persona_name
    if named is None:  # a persona's message: the channel is named by the people in it
        named = next((e.event for e in reversed(events)
                      if isinstance(e.event, MessageReceived)), None)
    return place_variables(
        user=speaker or author_id, channel=named.channel_name if named is not None else None,
        guild=named.guild_name if named is not None else None, channel_id=channel_id,
        is_dm=is_dm, now=now, previous=_previous(source, events), seed=seed)


def place_variables(*, user: str, channel: str | None, guild: str | None, channel_id: str,
                    is_dm: bool, now: float, previous: float | None = None, seed: str = ""
                    ) -> dict[str, str]:
    """The variables of a message by ``user`` in the channel and server named so (None:
    unnamed, as in a DM: then ``DM`` and ``Direct Messages``)."""
    return message_variables(
        user=user, channel=channel or (DM_CHANNEL if is_dm else channel_id),
        guild=guild or (DM_GUILD if is_dm else ""), now=now, previous=previous, seed=seed)


def _previous(source: object | None, events: Sequence[Typed]) -> float | None:
    """When the message before the one answered was written (people's and personas')."""
    seen = False
    for item in reversed(events):
        event = item.event
        if event is source:
            seen = True
            continue
        if seen and isinstance(event, MessageReceived | ModelReplied | PersonaGreeted):
            if isinstance(event, MessageReceived) and event.from_persona:
                continue
            when = event.sent_at if isinstance(event, MessageReceived) else None
            return when or item.recorded.recorded_at
    return None
