"""Shard leases and the IDENTIFY gate over PostgreSQL, in the log's own schema.

- ``personae_shard_leases``: one row per shard that some process runs or ran: its
  owner, until when (``expires_at``, renewed every second by a live owner), whether the
  owner was told which shards to run (``static``) or is a standby (``auto``), and
  ``wanted_by``: a static process asking a standby for its shard back.
- ``personae_identify_buckets``: one row per IDENTIFY bucket (``shard_id %
  max_concurrency``) with the last time a shard of it was let through.

Every time is the server's (``clock_timestamp()``), so machines' clocks never have to
agree. Each change is one statement whose ``WHERE`` decides who wins, so two processes
asking at once get one answer: a lease is taken only when it has expired (or is the
asker's), a bucket only when its last IDENTIFY is older than :data:`IDENTIFY_INTERVAL_S`.
Nothing is held between calls: a process that dies (kill -9) holds nothing but rows
that expire.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import Connection

from eventstore.postgres.target import PostgresTarget

T = TypeVar("T")

LEASE_TTL_S = 5.0
"""A lease not renewed for this long may be taken by another process."""
RENEW_INTERVAL_S = 1.0
"""How often a process renews its leases, and how often a standby looks for expired ones."""
IDENTIFY_INTERVAL_S = 5.5
"""Discord allows one IDENTIFY per bucket per 5 s; the extra half second covers the time
between taking the slot here and Discord receiving the IDENTIFY."""

_DDL_LOCK = 0x53484152  # 'SHAR': two-int advisory keys, apart from the event store's


class CoordinationError(Exception):
    """Coordination through PostgreSQL failed or was refused; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A shard's lease as the database holds it (``remaining_s`` < 0: expired)."""

    shard_id: int
    shard_count: int
    owner: str
    mode: str
    remaining_s: float
    wanted_by: str | None


def read_leases(conn: Connection[Any], schema: str) -> list[Lease]:
    """Every lease row in ``schema``, live or expired, by shard ([] when no process ever
    ran shards there). Reads only (``personae doctor`` uses it)."""
    exists = conn.execute("SELECT to_regclass(%s)",
                          (f'"{schema}".personae_shard_leases',)).fetchone()
    if exists is None or exists[0] is None:
        return []
    return [Lease(shard_id=r[0], shard_count=r[1], owner=r[2], mode=r[3],
                  remaining_s=float(r[4]), wanted_by=r[5]) for r in conn.execute(
        "SELECT shard_id, shard_count, owner, mode, "
        "extract(epoch FROM expires_at - clock_timestamp()), wanted_by "
        f'FROM "{schema}".personae_shard_leases ORDER BY shard_id').fetchall()]


class PostgresCoordinator:
    """Leases and the IDENTIFY gate of one bot process (see the module docstring)."""

    uses_identify_gate = True

    def __init__(self, target: PostgresTarget, *, shard_count: int, static: bool,
                 ttl_s: float = LEASE_TTL_S, owner: str | None = None) -> None:
        self.owner = owner or (f"{socket.gethostname()}:{os.getpid()}:"
                               f"{secrets.token_hex(3)}")
        self.shard_count = shard_count
        self.ttl_s = ttl_s
        self._mode = "static" if static else "auto"
        self._target = target
        self._schema = target.schema
        self._lock = threading.Lock()
        self._conn: Connection[Any] | None = None
        self._run(self._create)

    # -- leases ---------------------------------------------------------------------------

    def claim(self, wanted: Sequence[int] | None) -> list[int]:
        def claim(conn: Connection[Any]) -> list[int]:
            other = conn.execute(
                f"SELECT owner, shard_count FROM {self._t('personae_shard_leases')} "
                "WHERE expires_at >= clock_timestamp() AND shard_count <> %s LIMIT 1",
                (self.shard_count,)).fetchone()
            if other is not None:
                raise CoordinationError(
                    f"{other[0]} runs with shard_count {other[1]}, this process with "
                    f"{self.shard_count}: every process of a bot must use the same count "
                    "(stop them all to change it)")
            shards = list(range(self.shard_count)) if wanted is None else list(wanted)
            # an auto process leaves alone what a static one asked back, for one lease
            # time (in case the asker died meanwhile)
            fair = ("" if self._mode == "static" else
                    "AND (l.wanted_by IS NULL OR l.wanted_by = EXCLUDED.owner OR "
                    "l.expires_at < clock_timestamp() - make_interval(secs => %(ttl)s))")
            conn.execute(
                f"INSERT INTO {self._t('personae_shard_leases')} AS l (shard_id, shard_count, "
                "owner, mode, claimed_at, expires_at) "
                "SELECT s, %(count)s, %(owner)s, %(mode)s, clock_timestamp(), "
                "clock_timestamp() + make_interval(secs => %(ttl)s) "
                "FROM unnest(%(shards)s::integer[]) AS s "
                "ON CONFLICT (shard_id) DO UPDATE SET shard_count = EXCLUDED.shard_count, "
                "owner = EXCLUDED.owner, mode = EXCLUDED.mode, wanted_by = NULL, "
                "claimed_at = EXCLUDED.claimed_at, expires_at = EXCLUDED.expires_at "
                f"WHERE l.expires_at < clock_timestamp() {fair}",
                {"count": self.shard_count, "owner": self.owner, "mode": self._mode,
                 "ttl": self.ttl_s, "shards": shards})
            if self._mode == "static":
                conn.execute(
                    f"UPDATE {self._t('personae_shard_leases')} SET wanted_by = %s "
                    "WHERE shard_id = ANY(%s) AND owner <> %s AND mode = 'auto' "
                    "AND expires_at >= clock_timestamp() AND wanted_by IS NULL",
                    (self.owner, shards, self.owner))
            return self._held(conn)
        return self._run(claim)

    def renew(self) -> list[int]:
        def renew(conn: Connection[Any]) -> list[int]:
            rows = conn.execute(
                f"UPDATE {self._t('personae_shard_leases')} "
                "SET expires_at = clock_timestamp() + make_interval(secs => %s) "
                "WHERE owner = %s AND expires_at >= clock_timestamp() RETURNING shard_id",
                (self.ttl_s, self.owner)).fetchall()
            return sorted(r[0] for r in rows)
        return self._run(renew)

    def handback(self) -> list[int]:
        return self._run(lambda conn: sorted(r[0] for r in conn.execute(
            f"SELECT shard_id FROM {self._t('personae_shard_leases')} WHERE owner = %s "
            "AND wanted_by IS NOT NULL AND expires_at >= clock_timestamp()",
            (self.owner,)).fetchall()))

    def release(self, shards: Sequence[int] | None = None) -> None:
        every = list(range(self.shard_count)) if shards is None else list(shards)
        self._run(lambda conn: conn.execute(
            f"UPDATE {self._t('personae_shard_leases')} "
            "SET expires_at = clock_timestamp() - interval '1 millisecond' "
            "WHERE owner = %s AND shard_id = ANY(%s)", (self.owner, every)))

    def leases(self) -> list[Lease]:
        """Every lease row, live or expired, by shard."""
        return self._run(lambda conn: read_leases(conn, self._schema))

    # -- identify -------------------------------------------------------------------------

    def identify_wait(self, shard_id: int, max_concurrency: int) -> float:
        bucket = shard_id % max(1, max_concurrency)

        def take(conn: Connection[Any]) -> float:
            taken = conn.execute(
                f"INSERT INTO {self._t('personae_identify_buckets')} AS b "
                "(bucket, identified_at, shard_id, owner) "
                "VALUES (%(bucket)s, clock_timestamp(), %(shard)s, %(owner)s) "
                "ON CONFLICT (bucket) DO UPDATE SET identified_at = EXCLUDED.identified_at, "
                "shard_id = EXCLUDED.shard_id, owner = EXCLUDED.owner "
                "WHERE b.identified_at <= clock_timestamp() - make_interval(secs => %(gap)s) "
                "RETURNING bucket",
                {"bucket": bucket, "shard": shard_id, "owner": self.owner,
                 "gap": IDENTIFY_INTERVAL_S}).fetchone()
            if taken is not None:
                return 0.0
            row = conn.execute(
                "SELECT extract(epoch FROM identified_at + make_interval(secs => %s) "
                f"- clock_timestamp()) FROM {self._t('personae_identify_buckets')} "
                "WHERE bucket = %s", (IDENTIFY_INTERVAL_S, bucket)).fetchone()
            return max(0.05, float(row[0])) if row else 0.05
        return self._run(take)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- helpers --------------------------------------------------------------------------

    def _t(self, table: str) -> str:
        return f'"{self._schema}".{table}'

    def _held(self, conn: Connection[Any]) -> list[int]:
        return sorted(r[0] for r in conn.execute(
            f"SELECT shard_id FROM {self._t('personae_shard_leases')} WHERE owner = %s "
            "AND expires_at >= clock_timestamp()", (self.owner,)).fetchall())

    def _create(self, conn: Connection[Any]) -> None:
        # beside a log only: tables of ours in an empty schema would make the event store
        # take the schema for someone else's and refuse it
        found = conn.execute("SELECT to_regclass(%s)",
                             (f'"{self._schema}".personae_schema',)).fetchone()
        if found is None or found[0] is None:
            raise CoordinationError(f"there is no event log at {self._target.location} to "
                                    "coordinate shards beside (open the log first)")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                         (_DDL_LOCK, self._schema))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._t('personae_shard_leases')} ("
                "shard_id integer PRIMARY KEY, shard_count integer NOT NULL, "
                "owner text NOT NULL, mode text NOT NULL, claimed_at timestamptz NOT NULL, "
                "expires_at timestamptz NOT NULL, wanted_by text)")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._t('personae_identify_buckets')} ("
                "bucket integer PRIMARY KEY, identified_at timestamptz NOT NULL, "
                "shard_id integer NOT NULL, owner text NOT NULL)")

    def _run(self, work: Callable[[Connection[Any]], T]) -> T:
        """``work`` on the connection; a broken connection is opened again once."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(**self._target.connect_kwargs(
                            autocommit=True, application_name="personae-shards"))
                    return work(self._conn)
                except psycopg.OperationalError as exc:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise CoordinationError(
                            f"cannot coordinate shards through {self._target.location}: "
                            f"{self._target.redact(str(exc).strip().splitlines()[0])}"
                        ) from None
                except psycopg.Error as exc:
                    raise CoordinationError(
                        f"coordinating shards through {self._target.location} failed: "
                        f"{self._target.redact(str(exc).strip().splitlines()[0])}") from None
            raise AssertionError("unreachable")
