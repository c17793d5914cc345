"""Admission: which personas a message triggers, and whether each may answer now.

For every persona the triggers match (in the order the turn policy gives), in turn:
the hop limit (persona-to-persona chains), the age gate (an ``nsfw`` persona answers
only in age-restricted channels, and in DMs only if the operator allows it; a platform
that does not say whether a channel is age-restricted is refused), the permission
rules (people only), the
rate limit (a token bucket per scope key), the quota (a projection of the log) and
room in the reply queue. The first rule that refuses makes a TriggerRejected, with
at most one short notice per person, persona and kind within a window; otherwise a
PersonaTriggered. Admission decides; the dispatcher appends the decisions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from ..config import AdminSettings
from ..events import PersonaTriggered, Refusal, RefusalKind, TriggerReason, TriggerRejected
from ..events.ids import trigger_event_id
from ..limits.buckets import BucketKey, NoticeGate, RateLimiter
from ..limits.claims import LimitExceeded, charge
from ..limits.quotas import QuotaLedger, QuotaStatus, QuotaUsage, UsageKey, quota_status
from ..limits.schedule import next_fire_time
from ..personas.model import Persona
from ..personas.versions import VersionRecorder
from .messages import Author, InboundMessage
from .permissions import permission_refusal
from .roles import RoleLookup
from .triggers import TriggerEvaluator, TriggerMatch
from .workqueue import WorkQueue

PERSONA_AUTHOR = "persona:"
"""How the author of a persona's own message is named (persona-to-persona turns)."""
BUSY_NOTICE_WINDOW_S = 30.0
QUOTA_NOTICE_WINDOW_S = 3600.0
AGE_NOTICE_WINDOW_S = 3600.0
_ASKED = frozenset({TriggerReason.INVOKED, TriggerReason.MENTION, TriggerReason.REPLY,
                    TriggerReason.DM})
"""Triggers where someone asked the persona itself: only they get an age-gate notice (a
keyword or a channel the persona answers everywhere would make one per message)."""


class PersonaSource(Protocol):
    """What the dispatcher needs of the persona registry."""

    def get(self, persona_id: str) -> Persona | None:
        """The serving version of ``persona_id``."""
        ...

    def all(self) -> Sequence[Persona]:
        """Every serving persona."""
        ...


class TurnPolicy(Protocol):
    """Who takes a turn among the personas a message triggered, and in what order. It
    may read the log (who talked last), so it is asynchronous."""

    async def turns(self, message: InboundMessage,
                    matches: Sequence[TriggerMatch]) -> Sequence[TriggerMatch]:
        """The matches that get a decision, in the order they answer."""
        ...


class EveryMatch:
    """Every triggered persona answers, strongest trigger first (the matches' order)."""

    async def turns(self, message: InboundMessage,
                    matches: Sequence[TriggerMatch]) -> Sequence[TriggerMatch]:
        """All of ``matches``, as they are."""
        return matches


@dataclass(slots=True, kw_only=True)
class Decision:
    """One persona's fate for one message, before it is appended: the event, the rate
    token it took (given back if the append does not happen) and the notice to send."""

    persona: Persona
    match: TriggerMatch
    event: PersonaTriggered | TriggerRejected
    bucket: BucketKey | None = None
    notice: str | None = None


def reserved_tokens(persona: Persona) -> int:
    """The tokens an accepted reply holds on a token quota until it ends: what its prompt's
    history budget and its completion cap allow (the cap taken as that budget when the
    persona sets none), so replies in flight count at their worst."""
    budget = persona.context.max_tokens
    return budget + (persona.model.max_tokens or budget)


def scope_keys(message: InboundMessage, persona: Persona) -> dict[str, str]:
    """The key of each limit scope for ``message``'s author talking to ``persona``."""
    return {
        "user": message.author.id,
        "channel": message.channel_id,
        "guild": message.guild_id or f"dm:{message.author.id}",
        "persona": persona.id,
        "provider": persona.model.provider,
    }


class Admission:
    """Decides about triggered personas (see the module docstring)."""

    def __init__(self, *, personas: PersonaSource, queue: WorkQueue, ledger: QuotaLedger,
                 versions: VersionRecorder, admins: AdminSettings, clock: Callable[[], float],
                 triggers: TriggerEvaluator | None = None, policy: TurnPolicy | None = None,
                 rates: RateLimiter | None = None, notices: NoticeGate | None = None,
                 roles: RoleLookup | None = None, allow_nsfw_dms: bool = False,
                 bypass_roles: frozenset[str] = frozenset()) -> None:
        self._personas = personas
        self._queue = queue
        self._ledger = ledger
        self._versions = versions
        self._admins = admins
        self._clock = clock
        self._triggers = triggers or TriggerEvaluator()
        self._policy = policy or EveryMatch()
        self._rates = rates or RateLimiter(clock)
        self._notices = notices or NoticeGate(clock)
        self._roles = roles or RoleLookup({}, admins)
        self._allow_nsfw_dms = allow_nsfw_dms
        self._bypass_roles = bypass_roles

    async def matches(self, message: InboundMessage, *, replied_persona: str | None = None,
                      from_persona: str | None = None, hop: int = 0) -> Sequence[TriggerMatch]:
        """The personas ``message`` triggers that take a turn, in answering order."""
        found = self._triggers.evaluate(message, self._personas.all(),
                                        replied_persona=replied_persona,
                                        from_persona=from_persona, hop=hop)
        return await self._policy.turns(message, found) if found else found

    async def with_roles(self, message: InboundMessage,
                         matches: Sequence[TriggerMatch]) -> InboundMessage:
        """``message`` with its author's roles looked up if the rules of the personas it
        triggers need them and the platform did not send them."""
        personas = [p for m in matches if m.hop == 0
                    and (p := self._personas.get(m.persona_id)) is not None]
        message = await self._roles.complete(message, personas)
        if personas and self._bypass_roles and not message.author.roles_known:
            # who bypasses moderation depends on roles: look them up (unknown never bypass)
            message = await self._roles.lookup(message, self._bypass_roles)
        return message

    async def allowed(self, message: InboundMessage,
                      personas: Iterable[Persona]) -> list[tuple[Persona, Refusal | None]]:
        """Each persona with the permission rule (or the age gate) that refuses
        ``message``'s author there (None: they may talk to it), roles looked up where
        needed."""
        chosen = list(personas)
        message = await self._roles.complete(message, chosen)
        found = []
        for persona in chosen:
            rule = permission_refusal(message, persona.permissions, self._admins)
            gate = self._age_gate(message, persona)
            found.append((persona, Refusal.of(RefusalKind.PERMISSION, rule) if rule else
                          Refusal.of(RefusalKind.AGE_RESTRICTED, gate) if gate else None))
        return found

    async def look_up_roles(self, message: InboundMessage,
                            wanted: frozenset[str]) -> InboundMessage:
        """``message`` with its author's roles looked up, if unknown, where ``wanted``
        roles count (they stay unknown when the lookup fails)."""
        return await self._roles.lookup(message, wanted)

    async def decide(self, message: InboundMessage, matches: Sequence[TriggerMatch],
                     source_event_id: str, *, root_author: str | None = None
                     ) -> list[Decision]:
        """A decision for each of ``matches``. ``root_author``: for a persona's message
        (a persona-to-persona turn), the person whose message started the chain: the
        permission rules of each persona answering hold for them too, so a chain never
        makes a persona talk with someone it refuses."""
        personas = [(m, self._personas.get(m.persona_id)) for m in matches]
        chosen = [(m, p) for m, p in personas if p is not None]
        await self._versions.record(p for _, p in chosen)
        usage = await self._quota_usage(message, [p for _, p in chosen])
        root = None
        if root_author is not None and not root_author.startswith(PERSONA_AUTHOR):
            root = await self._roles.complete(replace(message, author=Author(
                id=root_author, display_name=root_author, roles_known=False)),
                [p for _, p in chosen])
        return [self._decide_one(message, match, persona, source_event_id, usage.get(persona.id),
                                 root=root, root_author=root_author)
                for match, persona in chosen]

    def undo(self, decisions: Iterable[Decision]) -> None:
        """The decisions were not appended (a duplicate, a failed append): give back the
        queue room and rate tokens the accepted ones took."""
        for decision in decisions:
            if isinstance(decision.event, PersonaTriggered):
                self._queue.release()
                self._give_back(decision.bucket)

    async def quota_status(self, persona_id: str, message: InboundMessage) -> QuotaStatus | None:
        """What ``message``'s author has left of the persona's quota there, and when it
        resets (None: the persona has no quota)."""
        persona = self._personas.get(persona_id)
        if persona is None or persona.limits.quota is None:
            return None
        quota = persona.limits.quota
        key = scope_keys(message, persona)[quota.scope]
        used = await self._ledger.read((persona.id, quota.scope, key))
        now = datetime.fromtimestamp(self._clock(), UTC)
        return quota_status(persona.id, quota, key, used, next_fire_time(quota, now))

    def overrule(self, decisions: Sequence[Decision], refused: LimitExceeded,
                 message: InboundMessage) -> list[Decision] | None:
        """``decisions`` with the one whose trigger the log refused (``refused``: another
        process had used the limit up) made a rejection, its queue room and rate token
        given back; None when no decision is that trigger's."""
        for index, decision in enumerate(decisions):
            if not isinstance(decision.event, PersonaTriggered) or trigger_event_id(
                    message.platform, message.message_id, decision.persona.id) != refused.event_id:
                continue
            self.undo([decision])
            persona, match = decision.persona, decision.match
            if refused.kind == RefusalKind.RATE_LIMITED.value and persona.limits.rate:
                rate = persona.limits.rate
                rejection = self._reject(
                    message, match, persona, Refusal.of(RefusalKind.RATE_LIMITED, refused.detail),
                    f"{rate.capacity} per {rate.per_s:g}s", retry_after=refused.retry_after_s,
                    notice=persona.delivery.rate_limited_notice, window_s=rate.per_s)
            else:
                rejection = self._quota_rejection(message, match, persona, refused.detail)
            return [*decisions[:index], rejection, *decisions[index + 1:]]
        return None

    def _reject(self, message: InboundMessage, match: TriggerMatch, persona: Persona,
                refusal: Refusal, detail: str = "", *, retry_after: float | None = None,
                notice: str | None = None, window_s: float = 0.0) -> Decision:
        send = notice is not None and match.hop == 0 and self._notices.allow(
            (message.platform, message.author.id, persona.id, refusal.kind.value), window_s)
        event = TriggerRejected(
            platform=message.platform, message_id=message.message_id, persona_id=persona.id,
            reason=refusal, author_id=message.author.id, detail=detail,
            retry_after_s=retry_after, notice_sent=send)
        return Decision(persona=persona, match=match, event=event,
                        notice=notice if send else None)

    def _quota_rejection(self, message: InboundMessage, match: TriggerMatch, persona: Persona,
                         exhausted: str) -> Decision:
        quota = persona.limits.quota
        when = next_fire_time(quota, datetime.fromtimestamp(self._clock(), UTC)) \
            if quota is not None else None
        reset = when.strftime("%Y-%m-%d %H:%M %Z") if when else "never"
        return self._reject(message, match, persona, Refusal.of(RefusalKind.QUOTA, exhausted),
                            f"resets {reset}",
                            notice=persona.delivery.quota_notice.replace("{reset}", reset),
                            window_s=QUOTA_NOTICE_WINDOW_S)

    def _decide_one(self, message: InboundMessage, match: TriggerMatch, persona: Persona,
                    source_event_id: str, used: QuotaUsage | None, *,
                    root: InboundMessage | None = None,
                    root_author: str | None = None) -> Decision:
        keys = scope_keys(message, persona)
        reject = functools.partial(self._reject, message, match, persona)
        if match.hop > persona.triggers.max_hops:
            return reject(Refusal.of(RefusalKind.HOP_LIMIT),
                          f"hop {match.hop} > max_hops {persona.triggers.max_hops}")
        gate = self._age_gate(message, persona)
        if gate is not None:
            asked = match.hop == 0 and TriggerReason(match.reason) in _ASKED
            return reject(Refusal.of(RefusalKind.AGE_RESTRICTED, gate), _AGE_DETAILS[gate],
                          notice=persona.delivery.age_restricted_notice if asked else None,
                          window_s=AGE_NOTICE_WINDOW_S)
        if match.hop == 0 or root is not None:
            rule = permission_refusal(root or message, persona.permissions, self._admins)
            if rule is not None:
                return reject(Refusal.of(RefusalKind.PERMISSION, rule),
                              f"for {root.author.id}, who started this" if root else "")
        now = self._clock()
        bucket = None
        rate = persona.limits.rate
        if rate is not None:
            bucket = BucketKey(persona.id, rate.scope, keys[rate.scope])
            allowed = self._rates.take(bucket, rate.capacity, rate.per_s)
            if not allowed.allowed:
                return reject(Refusal.of(RefusalKind.RATE_LIMITED, rate.scope),
                              f"{rate.capacity} per {rate.per_s:g}s",
                              retry_after=round(allowed.retry_after_s, 3),
                              notice=persona.delivery.rate_limited_notice, window_s=rate.per_s)
        quota = persona.limits.quota
        if quota is not None and used is not None:
            status = quota_status(persona.id, quota, keys[quota.scope], used, None)
            if status.exhausted:
                self._give_back(bucket)
                return self._quota_rejection(message, match, persona, status.exhausted)
        if not self._queue.reserve():
            self._give_back(bucket)
            return reject(Refusal.of(RefusalKind.BUSY), f"{self._queue.pending} replies waiting",
                          notice=persona.delivery.busy_notice, window_s=BUSY_NOTICE_WINDOW_S)
        event = PersonaTriggered(
            platform=message.platform, message_id=message.message_id, persona_id=persona.id,
            persona_version=persona.version, reason=TriggerReason(match.reason),
            channel_id=message.channel_id,
            author_id=message.author.id, source_event_id=source_event_id,
            guild_id=message.guild_id, is_dm=message.is_dm, hop=match.hop,
            provider=persona.model.provider, scope_keys=keys, root_author_id=root_author,
            limits=charge(at=now, rate=None if rate is None else {
                "scope": rate.scope, "key": keys[rate.scope], "capacity": rate.capacity,
                "per_s": rate.per_s}, quota=None if quota is None else {
                "scope": quota.scope, "key": keys[quota.scope], "tokens": quota.tokens,
                "messages": quota.messages, "hold": reserved_tokens(persona)}),
            moderation_bypass=self._bypasses(message), channel_nsfw=message.channel_nsfw)
        return Decision(persona=persona, match=match, event=event, bucket=bucket)

    def _age_gate(self, message: InboundMessage, persona: Persona) -> str | None:
        """Why an nsfw persona may not answer here (None: it may, or it is not nsfw)."""
        if not persona.nsfw or message.author.operator:
            return None  # the operator at their own terminal is the adult running the bot
        if message.is_dm:
            return None if self._allow_nsfw_dms else "dm"
        if message.channel_nsfw is None:
            return "unknown"
        return None if message.channel_nsfw else "channel"

    def _bypasses(self, message: InboundMessage) -> bool:
        author = message.author
        return (author.roles_known and not author.is_bot
                and not self._bypass_roles.isdisjoint(author.roles))

    async def _quota_usage(self, message: InboundMessage,
                           personas: Iterable[Persona]) -> Mapping[str, QuotaUsage]:
        wanted: list[UsageKey] = [
            (p.id, p.limits.quota.scope, scope_keys(message, p)[p.limits.quota.scope])
            for p in personas if p.limits.quota is not None]
        if not wanted:
            return {}
        usage = await self._ledger.usage(wanted)
        return {key[0]: used for key, used in usage.items()}

    def _give_back(self, bucket: BucketKey | None) -> None:
        if bucket is not None:
            self._rates.give_back(bucket)


_AGE_DETAILS = {
    "dm": "nsfw persona in a DM (dms.allow_nsfw is false)",
    "channel": "nsfw persona in a channel that is not age-restricted",
    "unknown": "nsfw persona where the platform does not say the channel is age-restricted",
}
