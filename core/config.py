"""config.yaml: the one global settings file, validated before anything runs.

:func:`load_config` returns a frozen :class:`Config`; any problem in the file is
raised as :class:`~core.problems.ProblemsError` with file, line and column.
Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .durations import parse_duration
from .problems import Problem, ProblemsError
from .schemacheck import bundled_schema, schema_problems, validator_for
from .yamldoc import load_yaml

CONFIG_ENV = "PERSONAE_CONFIG"
DEFAULT_DISCORD_API = "https://discord.com/api/v10"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    """Where the event log lives and how hard each commit is made durable. ``url``
    names the backend and the place (``sqlite:////abs/path.db``, ``memory://``);
    ``path`` is the file of an SQLite log (None for other backends)."""

    url: str
    path: Path | None
    synchronous: Literal["full", "normal"] = "full"


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
    dm_default_persona: str | None = None
    """``dms.default_persona``: who answers a DM when nobody was talked with there yet."""

    @property
    def env_file(self) -> Path:
        """The ``.env`` file read next to config.yaml."""
        return self.source.parent / ".env"

    def secret_names(self) -> list[str]:
        """Every environment variable this config names as holding a secret."""
        names = [self.discord.token_env]
        names += [p.api_key_env for p in self.providers.values() if p.api_key_env]
        return names


def default_config_path() -> Path:
    """``$PERSONAE_CONFIG`` when set, else ``./config.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or "config.yaml")


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve the config file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemsError([Problem(
            str(path), 1, 1, "",
            "no such config file (pass --config PATH or set PERSONAE_CONFIG)",
        )]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemsError([Problem(str(path), 1, 1, "", f"cannot read the file: {exc}")]) from None
    document = load_yaml(text, str(path))
    if document.data is None:  # an empty file means "all defaults"
        document = dataclasses.replace(document, data={})
    data = document.data
    if not isinstance(data, dict):
        raise ProblemsError([document.problem((), "config.yaml must be a mapping of sections")])
    problems = schema_problems(document, validator_for(bundled_schema("core", "config.schema.json")))
    if problems:
        raise ProblemsError(problems)
    return _build(path.resolve(), data)


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
        dm_default_persona=data.get("dms", {}).get("default_persona"),
    )


def _database(base: Path, data: Mapping[str, Any]) -> DatabaseSettings:
    synchronous = data.get("synchronous", "full")
    url = data.get("url")
    if url is None or url.startswith("sqlite://"):
        relative = url[len("sqlite:///"):] if url is not None else data.get("path",
                                                                           "data/personae.db")
        path = base / relative  # an absolute path stays absolute
        return DatabaseSettings(url=f"sqlite:///{path}", path=path, synchronous=synchronous)
    return DatabaseSettings(url=url, path=None, synchronous=synchronous)


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
    )
