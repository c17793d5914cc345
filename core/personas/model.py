"""A persona as the rest of personae sees it: frozen, validated, defaults applied.

The loader (``core.personas.loader``) builds these from YAML; the dispatcher, the
model gateway and the adapters only ever read them. Durations are seconds, ids
(users, roles, channels) are strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..patterns import Regex

Scope = Literal["user", "channel", "guild", "persona", "provider"]
ReasoningMode = Literal["hide", "spoiler", "attach"]
ContextScope = Literal["channel", "thread", "user", "dm"]
SelectiveLogic = Literal["and_any", "and_all", "not_any", "not_all"]
LorePosition = Literal["before_system", "after_system", "after_examples", "at_depth"]
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class FallbackModel:
    """The model used while the primary provider is failing."""

    provider: str
    name: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Which model answers, and how it samples. ``extra`` holds other sampling
    parameters passed through to the provider unchanged."""

    provider: str
    name: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    fallback: FallbackModel | None = None
    vision: bool = False
    """Whether the model sees images (false: images become a one-line note)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One example exchange shown to the model before the conversation."""

    user: str
    assistant: str


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """The system template, example exchanges, instructions placed after the history,
    and the greetings that open a conversation: every one a template
    (:mod:`core.personas.prompt`)."""

    system: str
    examples: tuple[Example, ...] = ()
    post_history: str | None = None
    greeting: str | None = None
    alternate_greetings: tuple[str, ...] = ()

    @property
    def greetings(self) -> tuple[str, ...]:
        """Every greeting, numbered from 1: ``greeting`` first, then the alternates."""
        return ((self.greeting,) if self.greeting else ()) + self.alternate_greetings


@dataclass(frozen=True, slots=True)
class ContextSpec:
    """What history the model sees."""

    scope: ContextScope = "channel"
    max_messages: int = 40
    max_tokens: int = 3000
    include_other_personas: bool = True
    max_images: int = 4
    """Most images in one prompt (the newest are kept)."""
    max_attachment_text: int = 20_000
    """Most characters of one text file or PDF inlined into a prompt."""


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    """When to move a conversation into a thread (None disables that rule)."""

    after_turns: int | None = None
    after_chars: int | None = None


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """What makes the persona answer. Keywords match on word boundaries; patterns are
    RE2 expressions (linear-time matching)."""

    mention: bool = True
    dm: bool = True
    reply: bool = True
    keywords: tuple[str, ...] = ()
    patterns: tuple[Regex, ...] = ()
    case_sensitive: bool = False
    channels: frozenset[str] = frozenset()
    slash: bool = True
    thread: ThreadSpec | None = None
    from_personas: frozenset[str] = frozenset()
    """Persona ids whose messages may trigger this one (persona-to-persona talk)."""
    max_hops: int = 2
    """How many persona-to-persona replies in a row before the chain stops."""


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """A token bucket: ``capacity`` messages, refilled evenly over ``per_s`` seconds."""

    capacity: int
    per_s: float
    scope: Scope = "user"


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    """A budget per window, computed from the log; the window resets on ``reset`` (cron)."""

    tokens: int | None = None
    messages: int | None = None
    scope: Scope = "user"
    reset: str = "0 0 * * *"
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    """Rate limit, quota, concurrency and the deadline for one reply."""

    rate: RateLimitSpec | None = None
    quota: QuotaSpec | None = None
    max_concurrent: int | None = None
    reply_deadline_s: float = 60.0


@dataclass(frozen=True, slots=True)
class PermissionSpec:
    """Who may talk to the persona, where. Empty allow-lists allow everyone."""

    allow_users: frozenset[str] = frozenset()
    deny_users: frozenset[str] = frozenset()
    allow_roles: frozenset[str] = frozenset()
    deny_roles: frozenset[str] = frozenset()
    allow_channels: frozenset[str] = frozenset()
    deny_channels: frozenset[str] = frozenset()
    dms: bool = True


@dataclass(frozen=True, slots=True)
class AllowedMentions:
    """Who model output may ping. The person being answered is pinged only when
    ``replied_user`` is true; everything else defaults to nobody."""

    users: bool = False
    roles: bool = False
    everyone: bool = False
    replied_user: bool = True


@dataclass(frozen=True, slots=True)
class DeliverySpec:
    """How replies reach the channel, and the notices users see."""

    webhook: bool = True
    stream_edits: bool = False
    allowed_mentions: AllowedMentions = AllowedMentions()
    failure_notice: str = "Sorry, I can't answer right now. Please try again in a moment."
    busy_notice: str = "I'm busy right now; please try again shortly."
    rate_limited_notice: str = "You're sending messages faster than I can answer; slow down a little."
    quota_notice: str = "You've used your quota for now; it resets at {reset}."
    age_restricted_notice: str = "I only talk in age-restricted channels."


@dataclass(frozen=True, slots=True)
class LoreEntry:
    """A lorebook entry, inserted into the prompt when its keys appear in recent messages
    (see :mod:`core.personas.lorebook` for what each setting does)."""

    content: str
    keys: tuple[str, ...] = ()
    secondary_keys: tuple[str, ...] = ()
    selective_logic: SelectiveLogic = "and_any"
    regex: bool = False
    case_sensitive: bool = False
    whole_words: bool = True
    constant: bool = False
    enabled: bool = True
    priority: int = 0
    order: int = 100
    scan_depth: int | None = None
    name: str | None = None
    position: LorePosition = "after_system"
    depth: int = 4
    """For ``position: at_depth``: how many messages from the end of the history."""
    role: Role = "system"
    """For ``position: at_depth``: who the inserted message is from."""
    probability: int = 100
    """Percent chance that an activated entry is inserted."""
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    delay_until_recursion: bool = False
    sticky: int = 0
    """Messages the entry stays active after it was inserted."""
    cooldown: int = 0
    """Messages after that (sticky or not) during which it cannot activate."""


@dataclass(frozen=True, slots=True)
class Lorebook:
    """Entries plus how far back to scan and how many tokens the whole book may use:
    ``token_budget`` tokens when set, else ``context_share`` of ``context.max_tokens``."""

    entries: tuple[LoreEntry, ...] = ()
    scan_depth: int = 4
    token_budget: int | None = None
    context_share: float = 0.25
    recursive: bool = False
    """Whether inserted entries' content can activate other entries (bounded)."""
    include: tuple[str, ...] = ()
    """Lorebook files (``personas/lorebooks/NAME.yaml``) whose entries were added."""

    def budget(self, context_tokens: int) -> int:
        """The most tokens the book may add to a prompt of ``context_tokens``."""
        if self.token_budget is not None:
            return self.token_budget
        return max(1, int(context_tokens * self.context_share))


@dataclass(frozen=True, slots=True)
class HttpToolSpec:
    """How an HTTP tool is called: ``url`` is a template whose ``{argument}`` places are
    filled (URL-encoded) from the model's arguments; header values may name environment
    variables as ``${NAME}`` (the secret never appears in the persona file)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    max_response_bytes: int = 65_536


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the persona may call: a built-in (``roll``, ``now``, ``lore``), an HTTP tool
    declared in the file, or one installed under the entry point group ``personae.tools``."""

    name: str
    kind: Literal["builtin", "http", "plugin"]
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    http: HttpToolSpec | None = None


@dataclass(frozen=True, slots=True)
class ToolsSpec:
    """The persona's tools and the bounds of a reply's tool loop: at most ``max_steps``
    rounds of tool calls, each call within ``call_timeout_s``."""

    entries: tuple[ToolSpec, ...] = ()
    max_steps: int = 4
    call_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ModerationOverride:
    """A persona's changes to config.yaml's moderation step: each direction on or off
    (None: as config says), thresholds by category (the levels the file sets, ``flag``
    and/or ``block``, None for never) and actions by verdict, over config's."""

    inbound: bool | None = None
    outbound: bool | None = None
    thresholds: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Persona:
    """A loaded persona. ``version`` is the content hash of ``source_text`` and the
    defaults applied to it; the event log stores each version's text once so any
    reply's prompt can be rebuilt."""

    id: str
    name: str
    model: ModelSpec
    prompt: PromptSpec
    avatar_url: str | None = None
    description: str = ""
    context: ContextSpec = ContextSpec()
    triggers: TriggerSpec = TriggerSpec()
    limits: LimitsSpec = LimitsSpec()
    permissions: PermissionSpec = PermissionSpec()
    delivery: DeliverySpec = DeliverySpec()
    lorebook: Lorebook = Lorebook()
    tools: ToolsSpec = ToolsSpec()
    reasoning: ReasoningMode = "hide"
    """What users see of a reasoning model's thinking: nothing, a spoiler block, or a
    text file with the reply. The log keeps it in every case."""
    nsfw: bool = False
    """An adult persona: it answers only in age-restricted channels (and DMs if the
    operator allows them), checked at admission."""
    moderation: ModerationOverride = ModerationOverride()
    tags: tuple[str, ...] = ()
    extensions: Mapping[str, Any] = field(default_factory=dict)
    source_path: Path | None = None
    source_text: str = ""
    version: str = ""
    notes: str = ""
    """For authors only (an imported card's creator notes); never part of a prompt."""
    applied_defaults: Mapping[str, Any] = field(default_factory=dict)
    """The persona_defaults merged under ``source_text``; with it the persona can be
    rebuilt exactly, and it is part of ``version``."""
    included: Mapping[str, str] = field(default_factory=dict)
    """The text of each lorebook file the persona includes, by name (part of
    ``version``, recorded with it)."""
