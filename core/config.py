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


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """Framework-wide bounds on work in flight."""

    max_concurrent_replies: int = 64
    queue_size: int = 10_000
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
    )


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
