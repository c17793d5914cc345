"""Short notices to the user (refusals, failures), sent as the persona through the
platform's sink; a failing sink is logged, never raised into the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..personas.model import Persona
from .messages import Notice, NoticeKind, ReplyTarget
from .sink import ReplySink

log = logging.getLogger(__name__)

FALLBACK_FAILURE_NOTICE = "Sorry, I can't answer right now. Please try again in a moment."
"""What a user is told when a reply failed and its persona is no longer loaded."""


class Notifier:
    """Sends notices through the sink of the target's platform."""

    def __init__(self, sinks: Mapping[str, ReplySink]) -> None:
        self._sinks = sinks

    async def send(self, target: ReplyTarget, persona: Persona | None, kind: NoticeKind,
                   text: str, *, persona_id: str = "") -> None:
        """Show ``text`` to the person ``target`` answers (no adapter: nothing to do)."""
        sink = self._sinks.get(target.platform)
        if sink is None:
            return
        pid = persona.id if persona else persona_id
        name = persona.name if persona else pid
        try:
            await sink.notice(Notice(target=target, persona_id=pid, persona_name=name, kind=kind,
                                     text=text))
        except Exception:
            log.exception("the %s adapter failed to show a notice", target.platform)
