"""``personae doctor``: checks a set-up before the first run, and says what to do.

Each check gives a :class:`Finding`: ``ok``; ``note`` (could not be checked, and
why); ``warn`` (worth fixing, does not stop the bot); ``fail`` (the bot cannot run
properly until it is fixed). Network checks make one cheap request each with a
short timeout. Secrets are never printed: findings name the variable, not its value,
and never repeat a server's error text (which may echo a key).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import aiohttp
import openai
import psycopg

from eventstore import EventStoreError
from eventstore.postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from eventstore.postgres.schema import schema_version
from eventstore.postgres.target import PostgresTarget
from eventstore.sqlite import check_log

from ..config import Config, ProviderSettings, load_config
from ..coordination import Lease, describe_shards, plan_problems
from ..coordination.leases import read_leases
from ..credentials import MissingSecret, Secrets
from ..gateway.gateway import PLACEHOLDER_API_KEY
from ..gateway.openai_backend import OPENAI_BASE_URL
from ..moderation.moderator import ModerationUnavailable
from ..moderation.openai_provider import OpenAIModeration
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.loader import load_personas
from ..problems import ProblemsError

Status = Literal["ok", "note", "warn", "fail"]

INTENT_PLACE = ("Developer Portal > your application > Bot > Privileged Gateway Intents > "
                "Message Content Intent")
TOKEN_PLACE = "Developer Portal > your application > Bot > Reset Token"
# Application flags (discord.com/developers/docs/resources/application#application-object-application-flags)
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
CLOCK_WARN_S = 30.0
CLOCK_FAIL_S = 300.0

_TOKEN_PART = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check: its name, its status and a sentence (what to do)."""

    check: str
    status: Status
    message: str

    def to_dict(self) -> dict[str, str]:
        """A plain mapping, for ``--json``."""
        return {"check": self.check, "status": self.status, "message": self.message}


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every finding, in the order the checks ran."""

    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> bool:
        """True when a finding stops the bot from running properly."""
        return any(f.status == "fail" for f in self.findings)

    def of(self, check: str) -> Finding:
        """The finding of ``check`` (tests and scripts use it)."""
        return next(f for f in self.findings if f.check == check)


@dataclass
class _ServerClock:
    """``Date`` headers seen, with the local time each response arrived."""

    seen: list[tuple[str, float, float]] = field(default_factory=list)

    def observe(self, source: str, headers: Mapping[str, str] | None, local: float) -> None:
        value = headers.get("date") if headers is not None else None
        if not value:
            return
        try:
            server = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return
        self.seen.append((source, server, local))


async def diagnose(
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> DoctorReport:
    """Run every check for the config at ``config_path``; ``environ`` defaults to os.environ."""
    try:
        config = load_config(config_path)
    except ProblemsError as exc:
        return DoctorReport((Finding(
            "config", "fail", "fix config.yaml: " + "; ".join(str(p) for p in exc.problems)),))
    secrets = Secrets.load(config.env_file, environ)
    dates = _ServerClock()
    personas, used = _personas(config)
    findings = [Finding("config", "ok", f"{config.source} is valid"), personas]
    if config.database.path is None and config.database.url.split("://", 1)[0] in (
            "postgresql", "postgres"):
        findings += await asyncio.to_thread(_postgres, config, secrets, timeout_s)
    else:
        findings += _database(config.database.path, config.database.url)
    token_finding, token = _token(config, secrets)
    findings.append(token_finding)
    findings += await _discord(config, token, timeout_s, dates, clock)
    if config.moderation.enabled and config.moderation.provider:
        used = used | {config.moderation.provider}
    for provider in config.providers.values():
        finding = await _provider(provider, secrets, timeout_s, dates, clock)
        if finding.status == "fail" and provider.name not in used:
            # a provider no persona uses cannot stop a reply
            finding = Finding(finding.check, "warn", finding.message + " (no persona uses it)")
        findings.append(finding)
    findings += await _moderation(config, secrets, timeout_s)
    findings.append(_clock(dates))
    return DoctorReport(tuple(findings))


# -- files -------------------------------------------------------------------------------


def _personas(config: Config) -> tuple[Finding, frozenset[str]]:
    """The finding, and the providers the valid personas use (fallbacks included)."""
    loaded = load_personas(config.personas_dir, defaults=defaults_from_config(config),
                           known_providers=known_providers_from_config(config))
    used = frozenset(
        name for persona in loaded.personas.values()
        for name in (persona.model.provider,
                     persona.model.fallback.provider if persona.model.fallback else None)
        if name)
    if loaded.problems:
        return Finding("personas", "fail", "fix the persona files: "
                       + "; ".join(str(p) for p in loaded.problems)), used
    if not loaded.personas:
        return Finding("personas", "warn", f"no persona files in {config.personas_dir}: the "
                       "bot will answer nothing (docs/personas.md shows how to write one)"), used
    return Finding("personas", "ok", f"{len(loaded.personas)} valid: "
                   + ", ".join(sorted(loaded.personas))), used


def _database(path: Path | None, url: str) -> list[Finding]:
    if path is None:
        return [Finding("database", "ok", f"{url}: nothing to check before a run")]
    directory = path.parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    unwritable = _not_writable(existing)
    if unwritable is not None:
        return [Finding("database", "fail",
                        f"cannot write in {existing} ({unwritable}): make it writable by this "
                        "user or point database.path somewhere that is")]
    if not path.exists():
        return [Finding("database", "ok",
                        f"{path} does not exist yet; `personae db init` (or the first run) "
                        "creates it")]
    if not os.access(path, os.W_OK):
        return [Finding("database", "fail",
                        f"the event log {path} is read-only for this user: fix its owner or mode")]
    try:
        violations = check_log(path)
    except EventStoreError as exc:
        return [Finding("database", "fail", str(exc))]
    if violations:
        return [Finding("database", "fail",
                        f"the event log {path} is unhealthy ("
                        + "; ".join(str(v) for v in violations)
                        + "): restore it from a backup (docs/deployment.md, Backups)")]
    return [Finding("database", "ok", f"{path} is writable and passes `personae db check`")]


def _postgres(config: Config, secrets: Secrets, timeout_s: float) -> list[Finding]:
    """The server answers, the log's schema version, and who runs which shard."""
    try:
        target = PostgresTarget.parse(config.database.url,
                                      password=config.database.password(secrets))
    except (EventStoreError, MissingSecret) as exc:
        return [Finding("database", "fail", str(exc))]
    try:
        with psycopg.connect(**target.connect_kwargs(
                connect_timeout=max(1, int(timeout_s)), autocommit=True,
                application_name="personae-doctor")) as conn:
            version = schema_version(conn, target.schema)
            leases = read_leases(conn, target.schema)
            server = conn.info.parameter_status("server_version") or "?"
    except psycopg.Error as exc:
        reason = target.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return [Finding("database", "fail", f"cannot connect to {target.location} ({reason}): "
                        "check the server, database.url and database.password_env")]
    if version is None:
        database = Finding("database", "ok", f"{target.location} answers (PostgreSQL {server}); "
                           "no log there yet: `personae db init` (or the first run) makes it")
    elif version > POSTGRES_SCHEMA_VERSION:
        database = Finding("database", "fail", f"{target.location} holds a log of schema "
                           f"{version}, written by a newer personae (this one understands up "
                           f"to {POSTGRES_SCHEMA_VERSION}): upgrade personae")
    else:
        later = "" if version == POSTGRES_SCHEMA_VERSION else (
            f"; migrated to {POSTGRES_SCHEMA_VERSION} when the bot opens it")
        database = Finding("database", "ok", f"{target.location} answers (PostgreSQL {server}); "
                           f"log schema {version}{later}")
    return [database, _shard_plan(config, leases)]


def _shard_plan(config: Config, leases: list[Lease]) -> Finding:
    """Gaps, overlaps and count mismatches among the live processes, and this config's
    place among them."""
    live = [lease for lease in leases if lease.remaining_s > 0]
    mine = config.discord.shards
    count = config.discord.shard_count or (live[0].shard_count if live else None)
    if count is None:
        return Finding("shards", "ok", "not sharded: one process runs every guild")
    holders = [(lease.owner, lease.shard_id, lease.shard_count) for lease in live]
    running = {lease.shard_id for lease in live}
    by_owner: dict[str, set[int]] = {}
    for lease in live:
        by_owner.setdefault(lease.owner, set()).add(lease.shard_id)
    if isinstance(mine, tuple) and set(mine) not in by_owner.values():
        # (a live process holding exactly these shards is taken for this config's own)
        holders += [("this config", shard, count) for shard in mine]
    problems = plan_problems(count, holders)
    if mine == "auto":
        problems = [p for p in problems if p.kind != "gap"]  # the standby fills gaps
    processes = sorted({lease.owner for lease in live})
    where = (f"{len(processes)} live process(es) run shard(s) "
             f"{describe_shards(sorted(running))} of {count}" if live else
             f"no process runs shards of {count} now")
    this = ("; this config is a standby (auto)" if mine == "auto" else
            f"; this config runs {describe_shards(mine)}" if isinstance(mine, tuple) else "")
    if not problems:
        return Finding("shards", "ok", f"{where}{this}: every shard has one process")
    worst: Status = "fail" if any(p.kind in ("overlap", "count") for p in problems) else "warn"
    advice = ("give each process its own range (--shards) and the same --shard-count; the "
              "guilds of a shard nobody runs get no answers (docs/scale-out.md)")
    return Finding("shards", worst, f"{where}{this}: "
                   + "; ".join(p.detail for p in problems) + f": {advice}")


def _not_writable(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory``, or None. Tries for real: root
    ignores modes, but not read-only mounts or full disks."""
    try:
        handle, name = tempfile.mkstemp(prefix=".personae-doctor-", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    os.unlink(name)
    return None


# -- Discord -----------------------------------------------------------------------------


def _token(config: Config, secrets: Secrets) -> tuple[Finding, str | None]:
    name = config.discord.token_env
    value = secrets.get(name)
    if value is None:
        return Finding("discord token", "fail",
                       f"set the environment variable {name} (or {name}=... in "
                       f"{config.env_file}) to the bot token ({TOKEN_PLACE})"), None
    problem = _token_shape_problem(value)
    if problem is not None:
        return Finding("discord token", "fail",
                       f"the value of {name} {problem}; copy the token again ({TOKEN_PLACE})"), None
    return Finding("discord token", "ok", f"{name} is set and shaped like a bot token"), value


def _token_shape_problem(value: str) -> str | None:
    """What is wrong with a bot token's shape, never quoting it. A token is three
    base64url parts joined by dots; the first encodes the bot's user id."""
    if value != value.strip():
        return "has spaces or a line break around it"
    if value.lower().startswith("bot "):
        return "starts with 'Bot ': leave that prefix out"
    if value[:1] in "'\"":
        return "is wrapped in quotes: leave them out"
    parts = value.split(".")
    if len(parts) != 3 or not all(_TOKEN_PART.match(p) for p in parts):
        return "is not shaped like a bot token (three parts of letters, digits, - and _ " \
               "joined by dots)"
    try:
        user_id = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        user_id = ""
    if not user_id.isdigit():
        return "is not shaped like a bot token (its first part does not encode a user id)"
    return None


async def _discord(config: Config, token: str | None, timeout_s: float, dates: _ServerClock,
                   clock: Callable[[], float]) -> list[Finding]:
    if token is None:
        return [Finding("discord", "note", "not checked: no usable token"),
                Finding("intents", "note", "not checked: no usable token; make sure the "
                        f"Message Content intent is on ({INTENT_PLACE})")]
    url = f"{config.discord.api_base_url}/applications/@me"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.get(url, headers={"Authorization": f"Bot {token}"}) as response:
            dates.observe("Discord", response.headers, clock())
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return [Finding("discord", "warn", f"could not reach Discord at "
                        f"{config.discord.api_base_url} ({reason}): the token was not checked"),
                Finding("intents", "note", "not checked: Discord could not be reached; make "
                        f"sure the Message Content intent is on ({INTENT_PLACE})")]
    if status == 401:
        return [Finding("discord", "fail", f"Discord rejected the token in "
                        f"{config.discord.token_env}: copy a fresh one ({TOKEN_PLACE})"),
                Finding("intents", "note", "not checked: the token was rejected")]
    if status != 200 or not isinstance(body, dict):
        return [Finding("discord", "warn", f"Discord answered HTTP {status} to "
                        "GET /applications/@me: the token was not checked"),
                Finding("intents", "note", "not checked; make sure the Message Content intent "
                        f"is on ({INTENT_PLACE})")]
    name = str(body.get("name", "?"))
    found = [Finding("discord", "ok", f"the token is accepted (application {name}, id "
                     f"{body.get('id', '?')})")]
    flags = int(body.get("flags") or 0)
    if flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        found.append(Finding("intents", "ok", "the Message Content intent is on"))
    else:
        found.append(Finding("intents", "fail", "the Message Content intent is off, so the "
                             "bot cannot read messages: switch it on in the " + INTENT_PLACE))
    return found


# -- model providers ---------------------------------------------------------------------


async def _moderation(config: Config, secrets: Secrets, timeout_s: float) -> list[Finding]:
    """The moderation step: off, local lists only, or a provider that answers one check
    (a provider that does not is a failure when ``fail: closed`` would refuse every
    message, a warning when ``fail: open`` lets every message through unchecked)."""
    settings = config.moderation
    if not settings.enabled:
        return []
    words = sum(len(w) for w in settings.words.values())
    patterns = sum(len(p) for p in settings.patterns.values())
    lists = f"local lists: {words} word(s), {patterns} pattern(s)"
    if settings.provider is None:
        return [Finding("moderation", "ok", f"on, with the {lists} only (no provider)")]
    status: Status = "fail" if settings.fail == "closed" else "warn"
    consequence = ("every message would be refused (fail: closed)" if status == "fail" else
                   "every message would go through unchecked by it (fail: open)")
    provider = config.providers[settings.provider]
    key_env = provider.key_env
    key = secrets.get(key_env) if key_env else PLACEHOLDER_API_KEY
    if key is None:
        return [Finding("moderation", status, f"moderation.provider {provider.name} needs "
                        f"{key_env}, which is not set: {consequence}")]
    client = OpenAIModeration(provider, key, settings.model)
    try:
        await client.scores("personae doctor", min(timeout_s, settings.timeout_s))
    except ModerationUnavailable as exc:
        return [Finding("moderation", status, f"{provider.name} did not answer a moderation "
                        f"check ({exc}) with {settings.model}: {consequence}")]
    finally:
        await client.aclose()
    return [Finding("moderation", "ok", f"on: {provider.name} answered a check with "
                    f"{settings.model}; fail: {settings.fail}; {lists}")]


async def _provider(settings: ProviderSettings, secrets: Secrets, timeout_s: float,
                    dates: _ServerClock, clock: Callable[[], float]) -> Finding:
    check = f"provider {settings.name}"
    if settings.kind == "offline":
        return Finding(check, "ok", "the built-in offline provider needs nothing")
    key_env = settings.key_env
    key = secrets.get(key_env) if key_env else PLACEHOLDER_API_KEY
    if key is None:
        return Finding(check, "fail", f"set the environment variable {key_env} to its API key "
                       "(or put it in the .env file next to config.yaml)")
    base_url = settings.base_url or OPENAI_BASE_URL
    client = openai.AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0,
                                default_headers=dict(settings.headers) or None,
                                default_query=dict(settings.extra_query) or None)
    whose = f" in {key_env}" if key_env else ""
    try:
        raw = await client.models.with_raw_response.list()
        dates.observe(settings.name, raw.headers, clock())
    except openai.APIStatusError as exc:
        dates.observe(settings.name, exc.response.headers, clock())
        status = exc.status_code
        if status in (401, 403):
            return Finding(check, "fail", f"{base_url} refused the API key{whose} (HTTP "
                           f"{status}): set a valid key")
        return Finding(check, "warn", f"{base_url} is reachable but answered HTTP {status} to "
                       "GET /models, so the key could not be checked")
    except openai.APITimeoutError:
        return Finding(check, "fail", f"{base_url} did not answer within {timeout_s:g} s: is "
                       "the server running and base_url right?")
    except openai.APIConnectionError:
        return Finding(check, "fail", f"cannot connect to {base_url}: is the server running "
                       "and base_url right?")
    finally:
        await client.close()
    return Finding(check, "ok", f"{base_url} answers and accepts the key{whose}")


# -- clock -------------------------------------------------------------------------------


def _clock(dates: _ServerClock) -> Finding:
    if not dates.seen:
        return Finding("clock", "note", "not checked: no server answered to compare with")
    # The one that disagrees most is the one that matters; Date has 1 s resolution.
    source, server, local = max(dates.seen, key=lambda s: abs(s[2] - s[1]))
    skew = local - server
    if abs(skew) <= CLOCK_WARN_S:
        return Finding("clock", "ok", f"within {CLOCK_WARN_S:g} s of {source}'s clock")
    direction = "ahead of" if skew > 0 else "behind"
    message = (f"this machine's clock is {abs(skew):.0f} s {direction} {source}'s: turn on "
               "time synchronisation (`timedatectl set-ntp true`)")
    if abs(skew) > CLOCK_FAIL_S:
        return Finding("clock", "fail", message + "; until then catch-up after a restart and "
                       "quota resets happen at the wrong times")
    return Finding("clock", "warn", message)


def run_diagnosis(config_path: Path, *, timeout_s: float = 5.0) -> DoctorReport:
    """:func:`diagnose` for synchronous callers (the CLI)."""
    return asyncio.run(diagnose(config_path, timeout_s=timeout_s))
