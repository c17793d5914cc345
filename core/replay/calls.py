"""Finding a recorded model call in the log from a message id, cheaply.

A user names a message as they saw it: the id of a message that triggered a
persona, or the id of a reply the bot posted, with or without its platform
(``discord:123``). Every lookup here is an index probe or a short index range (the
dispatcher's ``persona_messages`` table knows which message each reply answered), so
explaining one message costs milliseconds however long the log is.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore import EventFilter, LogReader

from ..dispatcher.projection import DispatchProjection, read_persona_messages
from ..events import MessageReceived, ReplyDelivered
from ..events.ids import GREETING_PREFIX, message_event_id, trigger_prefix
from .selection import platforms


class CallNotFound(Exception):
    """The log holds no message (or reply) with the id asked for."""


class EveryProvider(frozenset[str]):
    """Accepts any provider name: a recorded persona is rebuilt as it was, whether or
    not its provider is still in config.yaml."""

    def __contains__(self, item: object) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRef:
    """A message that personas were asked to answer: its platform and platform id.
    ``reply_id`` is set when the user named one of the bot's replies instead."""

    platform: str
    message_id: str
    reply_id: str | None = None
    persona_id: str | None = None


def find_message(log: LogReader, asked: str) -> MessageRef:
    """The message ``asked`` names (see the module docstring); raises CallNotFound."""
    platform, _, bare = asked.partition(":") if ":" in asked else ("", "", asked)
    known = platforms(log)
    candidates = [platform] if platform in known else known
    if platform not in known:
        bare = asked
    for candidate in candidates:
        received = log.get(message_event_id(candidate, bare))
        if received is not None and MessageReceived.from_data(received.data).from_persona:
            continue  # our own reply, seen coming back: found below as a reply
        if received is not None or next(log.with_id_prefix(trigger_prefix(candidate, bare)),
                                        None) is not None:
            return MessageRef(platform=candidate, message_id=bare)
    for candidate in candidates:
        found = _delivered_as(log, candidate, bare)
        if found is not None:
            return MessageRef(platform=candidate, message_id=found[0], reply_id=bare,
                              persona_id=found[1])
    where = f" on {platform}" if platform in known else ""
    raise CallNotFound(f"no message or reply with the id {bare!r}{where} in the log "
                       "(give the id of a message that triggered a persona, or of a reply)")


def _delivered_as(log: LogReader, platform: str, reply_id: str) -> tuple[str, str] | None:
    """(answered message id, persona id) of the reply posted as ``reply_id``: from the
    dispatcher's table, and from the events it has not seen (all of them when it never
    ran here: an imported log nobody has run yet)."""
    state = log.projection_state(DispatchProjection.name)
    seen = state[1] if state is not None and state[0] == DispatchProjection.version else 0
    if seen:
        found = read_persona_messages(log, platform, [reply_id]).get(reply_id)
        if found is not None:  # a greeting's message explains as the reply it opened
            return found.answered_message_id.removeprefix(GREETING_PREFIX), found.persona_id
    for event in log.scan(EventFilter(types=frozenset({ReplyDelivered.type}), after=seen)):
        delivered = ReplyDelivered.from_data(event.data)
        if delivered.platform == platform and reply_id in delivered.delivered_ids:
            return delivered.message_id, delivered.persona_id
    return None
