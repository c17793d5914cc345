"""The dispatcher's :class:`~core.dispatcher.sink.DeliveryRecorder`: each step of a
delivery as an event of the conversation's stream (see :mod:`core.events.delivery`).

Steps are appended through the conversation history, so its cache stays in step, and
are idempotent on their ids: recording a step twice (a recovered delivery finding a
part it had posted) writes it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eventstore import EventStore, LogReader

from ..context.history import ConversationHistory
from ..events import (
    DeliveryPartPosted,
    DeliveryPlanned,
    DomainEvent,
    PreviewPlanned,
    PreviewPosted,
    from_recorded,
)
from ..events.ids import (
    conversation_stream,
    delivery_part_event_id,
    delivery_plan_event_id,
    delivery_prefix,
    preview_planned_event_id,
    preview_posted_event_id,
)
from .messages import ReplyTarget
from .projection import read_persona_messages
from .recording import record
from .sink import DeliveryState, Preview


class DeliveryLog:
    """Records delivery steps and reads them back (see the module docstring)."""

    def __init__(self, store: EventStore, history: ConversationHistory) -> None:
        self._store = store
        self._history = history

    async def state(self, target: ReplyTarget, persona_id: str) -> DeliveryState:
        """What was recorded of ``persona_id``'s reply to ``target``."""
        prefix = delivery_prefix(target.platform, target.delivery_id, persona_id)
        steps = await self._store.read(lambda log: _steps(log, prefix))
        return delivery_state(steps)

    async def planned(self, target: ReplyTarget, persona_id: str, *, parts: Sequence[str],
                      route: str, channel_id: str) -> None:
        """Record the plan before the first part is posted."""
        await self._append(target, DeliveryPlanned(
            platform=target.platform, message_id=target.delivery_id, persona_id=persona_id,
            parts=tuple(parts), route=route, channel_id=channel_id, author_id=target.author_id),
            delivery_plan_event_id(target.platform, target.delivery_id, persona_id))

    async def posted(self, target: ReplyTarget, persona_id: str, index: int,
                     posted_id: str) -> None:
        """Record that part ``index`` is posted."""
        await self._append(target, DeliveryPartPosted(
            platform=target.platform, message_id=target.delivery_id, persona_id=persona_id,
            index=index, posted_id=posted_id),
            delivery_part_event_id(target.platform, target.delivery_id, persona_id, index))

    async def preview_planned(self, target: ReplyTarget, persona_id: str, *, text: str,
                              route: str, channel_id: str) -> None:
        """Record the preview's first text before it is posted."""
        await self._append(target, PreviewPlanned(
            platform=target.platform, message_id=target.delivery_id, persona_id=persona_id,
            text=text, route=route, channel_id=channel_id, author_id=target.author_id),
            preview_planned_event_id(target.platform, target.delivery_id, persona_id))

    async def previewed(self, target: ReplyTarget, persona_id: str, posted_id: str) -> None:
        """Record the preview's id before it is first edited."""
        await self._append(target, PreviewPosted(
            platform=target.platform, message_id=target.delivery_id, persona_id=persona_id,
            posted_id=posted_id),
            preview_posted_event_id(target.platform, target.delivery_id, persona_id))

    async def claims(self, platform: str, message_ids: Sequence[str]
                     ) -> Mapping[str, tuple[str, str]]:
        """Which of ``message_ids`` a recorded delivery claims (the ``persona_messages``
        projection): each one's (answered message id, persona id)."""
        wanted = list(message_ids)
        found = await self._store.read(lambda log: read_persona_messages(log, platform, wanted))
        return {mid: (m.answered_message_id, m.persona_id) for mid, m in found.items()}

    async def _append(self, target: ReplyTarget, event: DomainEvent, event_id: str) -> None:
        await record(self._history, conversation_stream(target.platform, target.channel_id),
                     event.new_event(event_id))


def _steps(log: LogReader, prefix: str) -> list[DomainEvent]:
    return [from_recorded(e) for e in log.with_id_prefix(prefix)]


def delivery_state(steps: Sequence[DomainEvent]) -> DeliveryState:
    """The state the recorded ``steps`` of one delivery add up to."""
    plan = next((s for s in steps if isinstance(s, DeliveryPlanned)), None)
    planned = next((s for s in steps if isinstance(s, PreviewPlanned)), None)
    posted = next((s for s in steps if isinstance(s, PreviewPosted)), None)
    preview = None
    if planned is not None:
        preview = Preview(text=planned.text, route=planned.route, channel_id=planned.channel_id,
                          posted_id=posted.posted_id if posted else None)
    return DeliveryState(
        parts=plan.parts if plan else (), route=plan.route if plan else "",
        channel_id=plan.channel_id if plan else "",
        posted={s.index: s.posted_id for s in steps if isinstance(s, DeliveryPartPosted)},
        preview=preview)
