"""config.yaml: the one global settings file, validated before anything runs.

:func:`load_config` returns a frozen :class:`Config`; any problem in the file is
raised as :class:`~core.problems.ProblemsError` with file, line and column.
Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .durations import DAY, HOUR, parse_duration
from .patterns import PatternError, compile_regex
from .problems import Problem, ProblemsError, at_most
from .schemacheck import bundled_schema, schema_problems, validator_for
from .yamldoc import YamlDocument, YamlLimits, dotted, load_yaml, read_yaml_file

if TYPE_CHECKING:
    from .credentials import Secrets

CONFIG_ENV = "PERSONAE_CONFIG"
CONFIG_LIMITS = YamlLimits(max_bytes=1024 * 1024, max_nodes=50_000, max_depth=64)
"""config.yaml: 1 MiB, 50,000 values, 64 levels (a real one is a few KiB)."""
DEFAULT_DISCORD_API = "https://discord.com/api/v10"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    """Where the event log lives and how hard each commit is made durable. ``url``
    names the backend and the place (``sqlite:////abs/path.db``, ``memory://``,
    ``postgresql://user@host/db``); ``path`` is the file of an SQLite log (None for other
    backends); ``password_env`` names the variable holding a PostgreSQL password."""

    url: str
    path: Path | None
    synchronous: Literal["full", "normal"] = "full"
    password_env: str | None = None

    def password(self, secrets: Secrets) -> str | None:
        """The password ``password_env`` names (MissingSecret when it is unset), None
        when the config names none."""
        if self.password_env is None:
            return None
        return secrets.require(self.password_env, "with the password of database.url "
                               "(database.password_env names it)")


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordSettings:
    """How to reach Discord. ``token_env`` names the variable holding the bot token."""

    token_env: str = "DISCORD_TOKEN"
    api_base_url: str = DEFAULT_DISCORD_API
    catch_up_window_s: float = 600.0
    application_id: int | None = None
    shards: tuple[int, ...] | Literal["auto"] | None = None
    """The Discord shards this process runs (``discord.shards``, ``run --shards``): ids,
    ``"auto"`` (a standby: whatever no live process runs), or None (no sharding)."""
    shard_count: int | None = None
    """How many shards the bot has in all (required with ``shards``)."""

    @property
    def sharded(self) -> bool:
        return self.shards is not None


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One model provider: an OpenAI-compatible server, or the built-in offline stand-in."""

    name: str
    _: KW_ONLY
    kind: Literal["openai", "offline"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    extra_query: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    max_concurrency: int = 16
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    images: Literal["data_url", "url"] = "data_url"
    """How images are sent: inline (``data_url``, the stored bytes) or as their source URL."""
    image_tokens: int | None = None
    """A flat token cost per image for estimates (None: OpenAI's tile formula)."""
    tools: bool | tuple[str, ...] = True
    """Whether the provider's models take tools: all, none, or those matching these
    model-name patterns (``*`` and ``?`` wildcards)."""

    def supports_tools(self, model: str) -> bool:
        """Whether ``model`` on this provider may be offered tools."""
        if isinstance(self.tools, bool):
            return self.tools
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.tools)

    @property
    def key_env(self) -> str | None:
        """The environment variable holding this provider's API key: ``api_key_env``,
        else ``OPENAI_API_KEY`` for OpenAI itself; None when none is needed (the offline
        provider, a local server named by ``base_url`` alone)."""
        if self.kind == "offline":
            return None
        return self.api_key_env or (None if self.base_url else "OPENAI_API_KEY")


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSettings:
    """Who may run admin commands (``/reload``): user and role ids."""

    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()


CONTEXT_CACHE_EVENTS = 50_000
"""The default of ``limits.context_cache``: enough for every conversation of a bot
answering a few thousand at once. A cached event of an everyday message takes about
2.5 KB (4.3 KB at 2,000 characters), so a full cache about 120 MB."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """Framework-wide bounds on work in flight."""

    max_concurrent_replies: int = 64
    queue_size: int = 10_000
    context_cache_events: int = CONTEXT_CACHE_EVENTS
    """Recent conversation events kept in memory for prompts (0: read the log each time)."""
    recovery_window_s: float = 600.0
    shutdown_deadline_s: float = 20.0


DISCORD_CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentSettings:
    """What the bot fetches of the files people attach, and how much (config.yaml
    ``attachments``). A file over ``max_file_bytes``, or past ``max_message_bytes`` or
    ``max_files`` for its message, is recorded as refused and never downloaded."""

    enabled: bool = True
    max_file_bytes: int = 8_000_000
    max_message_bytes: int = 20_000_000
    max_files: int = 10
    fetch_timeout_s: float = 20.0
    pdf_max_pages: int = 100
    extract_timeout_s: float = 15.0
    max_text_chars: int = 200_000
    """Most characters of text kept from one text file or PDF."""
    hosts: frozenset[str] = DISCORD_CDN_HOSTS
    """Where attachments may be downloaded from (Discord's CDN): anything else is refused."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacySettings:
    """What is kept of what people write, and for how long (config.yaml ``privacy``).

    ``encrypt``: personal content is sealed at rest under per-person keys (false: stored
    in clear, and then it cannot be erased); ``retention_s``: content older than that is
    shredded (None: kept); ``deleted_grace_s``: how long a deleted message's content is
    kept (0: shredded at once); ``keep_edit_history``: keep every revision of an edited
    message (else only the latest); ``shred_every_s``: how often retention and due
    deletions run; ``ledger``: the file every erasure is also written to, kept apart from
    the log, which ``db restore`` applies again to a restored backup."""

    encrypt: bool = True
    retention: str | None = None
    retention_s: float | None = None
    deleted_grace_s: float = 0.0
    keep_edit_history: bool = False
    shred_every_s: float = HOUR
    ledger: Path | None = None
    """config.yaml's default: ``data/erasures.jsonl`` beside it (None: no ledger)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    """Log level and format (``text`` for people, ``json`` for log shippers)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """The optional Prometheus and health endpoint; off when ``port`` is None."""

    port: int | None = None
    host: str = "127.0.0.1"


MODERATION_CATEGORY_DEFAULT = "default"
"""The ``moderation.thresholds`` key that holds for every category not named."""


NEVER = "never"
"""A threshold that no score reaches (``block: never``: the category only ever flags)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """A category's scores at which the moderation step flags and blocks (0..1; a score
    at or over the threshold counts; None: never)."""

    flag: float | None
    block: float | None


def threshold_level(value: Any) -> float | None:
    """A threshold as written (a number, or ``never``) as a number or None."""
    return None if value == NEVER else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationSettings:
    """The optional moderation step (config.yaml ``moderation``, docs/privacy.md).

    ``provider`` names an entry of ``providers:`` whose server has ``/v1/moderations``
    (None: the local lists only); ``words`` and ``patterns`` are the local lists, by
    category. ``actions`` maps a verdict (``flag``, ``block``) to what is done about it
    (``refuse``, ``warn``, ``alert``, ``log``); ``fail`` says what a failing provider
    means. ``bypass_roles``: people with one of these roles are not checked (unknown
    roles never bypass)."""

    enabled: bool = False
    inbound: bool = True
    outbound: bool = True
    provider: str | None = None
    model: str = "omni-moderation-latest"
    timeout_s: float = 5.0
    fail: Literal["open", "closed"] = "open"
    thresholds: Mapping[str, Thresholds] = field(
        default_factory=lambda: {MODERATION_CATEGORY_DEFAULT: Thresholds(flag=0.5, block=0.8)})
    words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    actions: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"flag": ("log",), "block": ("refuse",)})
    alert_channel: str | None = None
    bypass_roles: frozenset[str] = frozenset()
    inbound_notice: str = "I can't respond to that message."
    outbound_notice: str = "I wrote a reply I can't share here; please try asking differently."
    warning: str = "⚠️ Moderation flagged this conversation ({categories})."
    max_chars: int = 20_000
    """Most characters of one text sent to the provider (the rest is not checked by it;
    the local lists read the whole text)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything in config.yaml, with defaults filled in and paths made absolute."""

    source: Path
    database: DatabaseSettings
    personas_dir: Path
    discord: DiscordSettings = DiscordSettings()
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    admins: AdminSettings = AdminSettings()
    persona_defaults: Mapping[str, Any] = field(default_factory=dict)
    limits: LimitSettings = LimitSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    privacy: PrivacySettings = PrivacySettings()
    dm_default_persona: str | None = None
    """``dms.default_persona``: who answers a DM when nobody was talked with there yet."""
    dm_allow_nsfw: bool = False
    """``dms.allow_nsfw``: whether ``nsfw: true`` personas may answer in DMs."""
    moderation: ModerationSettings = ModerationSettings()

    @property
    def env_file(self) -> Path:
        """The ``.env`` file read next to config.yaml."""
        return self.source.parent / ".env"

    def secret_names(self) -> list[str]:
        """Every environment variable this config names as holding a secret."""
        names = [self.discord.token_env]
        if self.database.password_env:
            names.append(self.database.password_env)
        names += [p.api_key_env for p in self.providers.values() if p.api_key_env]
        return names


def default_config_path() -> Path:
    """``$PERSONAE_CONFIG`` when set, else ``./config.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or "config.yaml")


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve the config file at ``path``."""
    path = Path(path)
    try:
        text = read_yaml_file(path, CONFIG_LIMITS)
    except FileNotFoundError:
        raise ProblemsError([Problem(
            str(path), 1, 1, "",
            "no such config file (pass --config PATH or set PERSONAE_CONFIG)",
        )]) from None
    except OSError as exc:
        raise ProblemsError([Problem(str(path), 1, 1, "", f"cannot read the file: {exc}")]) from None
    document = load_yaml(text, str(path), CONFIG_LIMITS)
    if document.data is None:  # an empty file means "all defaults"
        document = dataclasses.replace(document, data={})
    data = document.data
    if not isinstance(data, dict):
        raise ProblemsError([document.problem((), "config.yaml must be a mapping of sections")])
    problems = schema_problems(document, validator_for(bundled_schema("core", "config.schema.json")))
    problems += _password_in_url(document)
    problems += _duration_problems(document, {p.field for p in problems})
    problems += _shard_problems(document, {p.field for p in problems})
    if not any(p.field.startswith("moderation") for p in problems):
        problems += _moderation_problems(document)
    if problems:
        raise ProblemsError(at_most(problems))
    return _build(path.resolve(), data)


def _password_in_url(document: YamlDocument) -> list[Problem]:
    """A database URL may not carry a password (the message does not repeat the URL)."""
    database = document.data.get("database")
    url = database.get("url") if isinstance(database, dict) else None
    if not isinstance(url, str) or "://" not in url:
        return []
    authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    query = url.split("?", 1)[1] if "?" in url else ""
    if ":" in authority.rpartition("@")[0] or any(
            part.startswith("password=") for part in query.split("&")):
        return [document.problem(("database", "url"), "holds a password, which never goes in "
                                 "this file: put it in an environment variable (or .env) and "
                                 "name that in database.password_env")]
    return []


def parse_shards(text: str) -> tuple[int, ...] | Literal["auto"]:
    """``0-3``, ``0,2,5-7`` (ids, sorted, each once) or ``auto``; ValueError says why not."""
    text = text.strip()
    if text == "auto":
        return "auto"
    ids: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"{text!r} is not a shard list: write ranges such as 0-3 or "
                             "0,2,5-7, or auto")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"the range {part.strip()} runs backwards: write {high}-{low}")
        if high - low > 100_000:
            raise ValueError(f"the range {part.strip()} has more shards than Discord allows")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


def shard_plan_problem(shards: tuple[int, ...] | Literal["auto"] | None,
                       shard_count: int | None, database_url: str) -> str | None:
    """Why ``shards`` out of ``shard_count`` cannot run on the log ``database_url``, or None."""
    if shards is None:
        return None if shard_count is None else (
            "shard_count needs shards (the ones this process runs: 0-N, a range, or auto)")
    if shard_count is None:
        return "shards needs shard_count (how many shards the bot has in all)"
    if shards != "auto" and shards[-1] >= shard_count:
        return (f"shard {shards[-1]} does not exist with shard_count {shard_count} "
                f"(shards are 0 to {shard_count - 1})")
    on_postgres = database_url.split("://", 1)[0] in ("postgresql", "postgres")
    if not on_postgres and (shards == "auto" or len(shards) < shard_count):
        what = "a standby (auto)" if shards == "auto" else "part of the shards"
        return (f"running {what} needs the log on PostgreSQL (database.url: postgresql://...): "
                "other processes run the rest, and an SQLite log has one process")
    return None


def _shard_problems(document: YamlDocument, blamed: set[str]) -> list[Problem]:
    discord = _mapping(document.data.get("discord"))
    if blamed & {"discord.shards", "discord.shard_count"}:
        return []
    text, count = discord.get("shards"), discord.get("shard_count")
    try:
        shards = parse_shards(text) if isinstance(text, str) else None
    except ValueError as exc:
        return [document.problem(("discord", "shards"), str(exc))]
    database = _mapping(document.data.get("database"))
    problem = shard_plan_problem(shards, count if isinstance(count, int) else None,
                                 str(database.get("url") or "sqlite:///"))
    if problem is None:
        return []
    return [document.problem(("discord", "shards" if text is not None else "shard_count"),
                             problem)]


# The longest each duration setting may be, and whether 0s works for it. Longer ones
# cannot be what was meant (and date arithmetic overflows long before 99999999999d).
_DURATIONS: Mapping[tuple[str, str], tuple[float, bool]] = {
    ("discord", "catch_up_window"): (7 * DAY, True),
    ("limits", "recovery_window"): (7 * DAY, True),
    ("limits", "shutdown_deadline"): (HOUR, True),
    ("privacy", "retention"): (3650 * DAY, False),
    ("privacy", "deleted_grace"): (30 * DAY, True),
    ("privacy", "shred_every"): (DAY, False),
}
_PROVIDER_TIMEOUT = (HOUR, False)


def _duration_problems(document: YamlDocument, blamed: set[str]) -> list[Problem]:
    """Durations the schema let through (it checks their spelling) that are too long,
    or 0s where nothing could ever finish."""
    data = document.data
    settings: list[tuple[tuple[str, ...], Any, tuple[float, bool]]]
    settings = [((section, key), _mapping(data.get(section)).get(key), bounds)
                for (section, key), bounds in _DURATIONS.items()]
    settings += [(("providers", name, "timeout"), _mapping(provider).get("timeout"),
                  _PROVIDER_TIMEOUT)
                 for name, provider in _mapping(data.get("providers")).items()]
    problems = []
    for path, value, (longest, zero_works) in settings:
        if value is None or dotted(path) in blamed:
            continue
        try:
            seconds = parse_duration(value, maximum=longest)
        except ValueError as exc:
            problems.append(document.problem(path, str(exc)))
            continue
        if seconds == 0 and not zero_works:
            problems.append(document.problem(
                path, "must be longer than 0s, or no request could ever finish"))
    return problems


def _moderation_problems(document: YamlDocument) -> list[Problem]:
    """What the schema cannot see in ``moderation``: a provider that is not configured,
    a flag threshold over its block threshold, an alert with nowhere to go, a pattern
    RE2 cannot take, a timeout too long."""
    data = document.data
    section = _mapping(data.get("moderation"))
    problems = []
    provider = section.get("provider")
    providers = _mapping(data.get("providers"))
    if provider is not None and provider not in providers:
        problems.append(document.problem(("moderation", "provider"), (
            f"no provider {provider!r} under providers: (known: "
            f"{', '.join(sorted(map(str, providers))) or 'none'})")))
    elif provider is not None and _mapping(providers[provider]).get("kind") == "offline":
        problems.append(document.problem(("moderation", "provider"),
                                         "the offline provider has no moderation endpoint"))
    for name, pair in _mapping(section.get("thresholds")).items():
        if (problem := thresholds_problem(_mapping(pair))) is not None:
            problems.append(document.problem(("moderation", "thresholds", name), problem))
    actions = _mapping(section.get("actions"))
    wants_alert = any("alert" in ([a] if isinstance(a, str) else a) for a in actions.values())
    if wants_alert and section.get("alert_channel") is None:
        problems.append(document.problem(("moderation", "actions"), (
            "an alert action needs moderation.alert_channel (the moderators' channel id)")))
    for category, patterns in _mapping(section.get("patterns")).items():
        for index, pattern in enumerate(patterns):
            try:
                compile_regex(pattern)
            except PatternError as exc:
                problems.append(document.problem(("moderation", "patterns", category, index),
                                                 f"{pattern!r} {exc}"))
    timeout = section.get("timeout")
    if timeout is not None:
        try:
            if parse_duration(timeout, maximum=MODERATION_LONGEST_TIMEOUT_S) == 0:
                problems.append(document.problem(("moderation", "timeout"),
                                                 "must be longer than 0s, or no check could "
                                                 "ever finish"))
        except ValueError as exc:
            problems.append(document.problem(("moderation", "timeout"), str(exc)))
    return problems


def thresholds_problem(pair: Mapping[str, Any]) -> str | None:
    """What is wrong with a category's ``{flag, block}`` as written (None: nothing)."""
    flag, block = pair.get("flag"), pair.get("block")
    if isinstance(flag, int | float) and isinstance(block, int | float) and flag > block:
        return (f"flag ({flag}) is over block ({block}): every blocked text is flagged "
                "first, so flag must be at most block")
    return None


MODERATION_LONGEST_TIMEOUT_S = 60.0
"""A moderation check holds its reply up: a minute is the longest that makes sense."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _build(source: Path, data: Mapping[str, Any]) -> Config:
    base = source.parent
    database = data.get("database", {})
    discord = data.get("discord", {})
    limits = data.get("limits", {})
    logging = data.get("logging", {})
    metrics = data.get("metrics", {})
    admins = data.get("admins", {})
    return Config(
        source=source,
        database=_database(base, database),
        personas_dir=base / data.get("personas", {}).get("dir", "personas"),
        discord=DiscordSettings(
            token_env=discord.get("token_env", "DISCORD_TOKEN"),
            api_base_url=discord.get("api_base_url", DEFAULT_DISCORD_API).rstrip("/"),
            catch_up_window_s=parse_duration(discord.get("catch_up_window", "10m")),
            application_id=discord.get("application_id"),
            shards=parse_shards(discord["shards"]) if "shards" in discord else None,
            shard_count=discord.get("shard_count"),
        ),
        providers={name: _provider(name, p) for name, p in data.get("providers", {}).items()},
        admins=AdminSettings(
            users=frozenset(str(u) for u in admins.get("users", [])),
            roles=frozenset(str(r) for r in admins.get("roles", [])),
        ),
        persona_defaults=data.get("persona_defaults", {}),
        limits=LimitSettings(
            max_concurrent_replies=limits.get("max_concurrent_replies", 64),
            queue_size=limits.get("queue_size", 10_000),
            context_cache_events=limits.get("context_cache", CONTEXT_CACHE_EVENTS),
            recovery_window_s=parse_duration(limits.get("recovery_window", "10m")),
            shutdown_deadline_s=parse_duration(limits.get("shutdown_deadline", "20s")),
        ),
        logging=LoggingSettings(
            level=logging.get("level", "info"), format=logging.get("format", "text")
        ),
        metrics=MetricsSettings(port=metrics.get("port"), host=metrics.get("host", "127.0.0.1")),
        attachments=_attachments(data.get("attachments", {})),
        privacy=_privacy(base, data.get("privacy", {})),
        dm_default_persona=data.get("dms", {}).get("default_persona"),
        dm_allow_nsfw=data.get("dms", {}).get("allow_nsfw", False),
        moderation=_moderation(data.get("moderation", {})),
    )


def _moderation(data: Mapping[str, Any]) -> ModerationSettings:
    defaults = ModerationSettings()
    given = {str(name): t for name, t in data.get("thresholds", {}).items()}
    base = defaults.thresholds[MODERATION_CATEGORY_DEFAULT]
    fallback = _thresholds(given.get(MODERATION_CATEGORY_DEFAULT, {}), base)
    thresholds = {MODERATION_CATEGORY_DEFAULT: fallback}
    thresholds.update({name: _thresholds(t, fallback) for name, t in given.items()
                       if name != MODERATION_CATEGORY_DEFAULT})
    actions = dict(defaults.actions)
    actions.update({verdict: _names(items) for verdict, items in data.get("actions", {}).items()})
    notices = data.get("notices", {})
    alert = data.get("alert_channel")
    return ModerationSettings(
        enabled=data.get("enabled", bool(data)),
        inbound=data.get("inbound", defaults.inbound),
        outbound=data.get("outbound", defaults.outbound),
        provider=data.get("provider"),
        model=data.get("model", defaults.model),
        timeout_s=parse_duration(data.get("timeout", "5s")),
        fail=data.get("fail", defaults.fail),
        thresholds=thresholds,
        words={str(c): tuple(str(w) for w in ws) for c, ws in data.get("words", {}).items()},
        patterns={str(c): tuple(ps) for c, ps in data.get("patterns", {}).items()},
        actions=actions,
        alert_channel=str(alert) if alert is not None else None,
        bypass_roles=frozenset(str(r) for r in data.get("bypass_roles", [])),
        inbound_notice=notices.get("inbound", defaults.inbound_notice),
        outbound_notice=notices.get("outbound", defaults.outbound_notice),
        warning=data.get("warning", defaults.warning),
        max_chars=data.get("max_chars", defaults.max_chars),
    )


def _thresholds(written: Mapping[str, Any], inherited: Thresholds) -> Thresholds:
    """``written``'s levels, the ones it leaves out from ``inherited``."""
    return Thresholds(
        flag=threshold_level(written["flag"]) if "flag" in written else inherited.flag,
        block=threshold_level(written["block"]) if "block" in written else inherited.block)


def _names(items: Any) -> tuple[str, ...]:
    return (items,) if isinstance(items, str) else tuple(dict.fromkeys(items))


def _privacy(base: Path, data: Mapping[str, Any]) -> PrivacySettings:
    retention = data.get("retention")
    return PrivacySettings(
        encrypt=data.get("encrypt", True),
        retention=retention,
        retention_s=parse_duration(retention) if retention is not None else None,
        deleted_grace_s=parse_duration(data.get("deleted_grace", "0s")),
        keep_edit_history=data.get("keep_edit_history", False),
        shred_every_s=parse_duration(data.get("shred_every", "1h")),
        ledger=base / data.get("ledger", "data/erasures.jsonl"),
    )


def _attachments(data: Mapping[str, Any]) -> AttachmentSettings:
    defaults = AttachmentSettings()
    return AttachmentSettings(
        enabled=data.get("enabled", defaults.enabled),
        max_file_bytes=parse_size(data.get("max_file_size"), defaults.max_file_bytes),
        max_message_bytes=parse_size(data.get("max_message_size"), defaults.max_message_bytes),
        max_files=data.get("max_files", defaults.max_files),
        fetch_timeout_s=parse_duration(data.get("fetch_timeout", "20s")),
        pdf_max_pages=data.get("pdf_max_pages", defaults.pdf_max_pages),
        extract_timeout_s=parse_duration(data.get("extract_timeout", "15s")),
        max_text_chars=data.get("max_text_chars", defaults.max_text_chars),
        hosts=frozenset(data["hosts"]) if "hosts" in data else defaults.hosts,
    )


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(value: Any, default: int) -> int:
    """A size: a number of bytes, or text such as ``8MB``/``512KiB`` (the schema checks
    the form)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = text[len(number):].strip() if number else text
    return int(float(number) * _SIZE_UNITS[unit.strip()])


def _database(base: Path, data: Mapping[str, Any]) -> DatabaseSettings:
    synchronous = data.get("synchronous", "full")
    url = data.get("url")
    password_env = data.get("password_env")
    if url is None or url.startswith("sqlite://"):
        relative = url[len("sqlite:///"):] if url is not None else data.get("path",
                                                                           "data/personae.db")
        path = base / relative  # an absolute path stays absolute
        return DatabaseSettings(url=f"sqlite:///{path}", path=path, synchronous=synchronous,
                                password_env=password_env)
    return DatabaseSettings(url=url, path=None, synchronous=synchronous,
                            password_env=password_env)


def _provider(name: str, data: Mapping[str, Any]) -> ProviderSettings:
    return ProviderSettings(
        name=name,
        kind=data.get("kind", "openai"),
        base_url=data.get("base_url"),
        api_key_env=data.get("api_key_env"),
        headers=dict(data.get("headers", {})),
        extra_body=dict(data.get("extra_body", {})),
        extra_query=dict(data.get("extra_query", {})),
        timeout_s=parse_duration(data.get("timeout", "60s")),
        max_concurrency=data.get("max_concurrency", 16),
        requests_per_minute=data.get("requests_per_minute"),
        tokens_per_minute=data.get("tokens_per_minute"),
        images=data.get("images", "data_url"),
        image_tokens=data.get("image_tokens"),
        tools=(tuple(data["tools"]) if isinstance(data.get("tools"), list)
               else data.get("tools", True)),
    )
