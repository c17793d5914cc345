"""The key table of sealed content on an SQL database (SQLite and PostgreSQL alike).

One row per key (``content_keys``): its id, whose it is (subject), its period and scope,
the secret (NULL once destroyed), when it was made and destroyed, and when it falls due
(a delayed shred). Destroying a key overwrites its secret with NULL: the only row
updates in a log, and never on ``events``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .sealing import KeyCounts, KeyRecord, Shred, after_prefix

Fetch = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one statement with parameters on the connection, returns its rows ([] if none)."""

_COLUMNS = "key_id, subject, period, scope, secret, created_at, destroyed_at, due_at"
_BATCH = 500


class SqlKeyTable:
    """:class:`~eventstore.sealing.KeyTable` over ``fetch`` (``mark``: the driver's
    parameter marker, ``?`` or ``%s``)."""

    def __init__(self, fetch: Fetch, mark: str = "?") -> None:
        self._fetch = fetch
        self._mark = mark

    def insert(self, record: KeyRecord) -> None:
        """Add a key."""
        marks = ", ".join([self._mark] * 8)
        self._fetch(f"INSERT INTO content_keys ({_COLUMNS}) VALUES ({marks})", record_row(record))

    def insert_many(self, records: Sequence[KeyRecord]) -> None:
        """Add keys, in as few statements as they fit in (each statement a round trip,
        and on SQLite a wait for the GIL)."""
        rows = list(records)
        for start in range(0, len(rows), 100):
            chunk = rows[start:start + 100]
            marks = ", ".join(["(" + ", ".join([self._mark] * 8) + ")"] * len(chunk))
            self._fetch(f"INSERT INTO content_keys ({_COLUMNS}) VALUES {marks}",
                        [value for record in chunk for value in record_row(record)])

    def find_many(self, wanted: Sequence[tuple[str, int, str]]
                  ) -> dict[tuple[str, int, str], tuple[str, bytes]]:
        """The live key of each ``(subject, period, scope)`` that has one, in one query
        per 100."""
        found: dict[tuple[str, int, str], tuple[str, bytes]] = {}
        m = self._mark
        for start in range(0, len(wanted), 100):
            chunk = wanted[start:start + 100]
            # ORed equalities: each an index probe on both databases (a row-value IN over
            # VALUES makes SQLite scan the table)
            terms = " OR ".join([f"(subject = {m} AND period = {m} AND scope = {m})"] * len(chunk))
            for subject, period, scope, key_id, secret in self._fetch(
                    f"SELECT subject, period, scope, key_id, secret FROM content_keys WHERE "
                    f"({terms}) AND secret IS NOT NULL AND due_at IS NULL",
                    [v for triple in chunk for v in triple]):
                found[(subject, int(period), scope)] = (key_id, bytes(secret))
        return found

    def find(self, subject: str, period: int, scope: str) -> tuple[str, bytes] | None:
        """The live key of ``(subject, period, scope)``."""
        m = self._mark
        rows = self._fetch(
            f"SELECT key_id, secret FROM content_keys WHERE subject = {m} AND period = {m} "
            f"AND scope = {m} AND secret IS NOT NULL AND due_at IS NULL LIMIT 1",
            (subject, period, scope))
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    def secrets(self, key_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The secret of each key that exists (None: destroyed)."""
        found: dict[str, bytes | None] = {}
        wanted = list(dict.fromkeys(key_ids))
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start:start + _BATCH]
            marks = ", ".join([self._mark] * len(chunk))
            for key_id, secret in self._fetch(
                    f"SELECT key_id, secret FROM content_keys WHERE key_id IN ({marks})", chunk):
                found[key_id] = None if secret is None else bytes(secret)
        return found

    def destroy(self, shred: Shred, now: float) -> int:
        """Apply ``shred``: destroy (or mark due) the live keys it names."""
        count = 0
        m = self._mark
        clauses: list[str] = ["secret IS NOT NULL"]
        params: list[Any] = []
        selective = False
        if shred.subject is not None:
            clauses.append(f"subject = {m}")
            params.append(shred.subject)
            selective = True
        if shred.scope_prefix is not None:
            clauses.append(f"scope >= {m} AND scope < {m}")
            params += [shred.scope_prefix, after_prefix(shred.scope_prefix)]
            selective = True
        if shred.keep_scope is not None:
            clauses.append(f"scope <> {m}")
            params.append(shred.keep_scope)
        if shred.before_period is not None:
            clauses.append(f"period < {m}")
            params.append(shred.before_period)
            selective = True
        if shred.made_before is not None:
            clauses.append(f"created_at <= {m}")
            params.append(shred.made_before)
        where = " AND ".join(clauses)
        if selective and shred.delay_s > 0:
            due = now + shred.delay_s
            count += len(self._fetch(
                f"UPDATE content_keys SET due_at = {m} WHERE {where} AND "
                f"(due_at IS NULL OR due_at > {m}) RETURNING key_id", [due, *params, due]))
        elif selective:
            count += len(self._fetch(
                f"UPDATE content_keys SET secret = NULL, destroyed_at = {m} WHERE {where} "
                "RETURNING key_id", [now, *params]))
        if shred.due:
            by = now if shred.due_by is None else shred.due_by
            count += len(self._fetch(
                f"UPDATE content_keys SET secret = NULL, destroyed_at = {m} WHERE secret IS NOT "
                f"NULL AND due_at IS NOT NULL AND due_at <= {m} RETURNING key_id", [now, by]))
        return count

    def epoch(self) -> float:
        """The latest destruction time (0: none)."""
        rows = self._fetch("SELECT MAX(destroyed_at) FROM content_keys "
                           "WHERE destroyed_at IS NOT NULL", ())
        return float(rows[0][0] or 0) if rows else 0.0

    def records(self) -> Iterator[KeyRecord]:
        """Every key, in key id order."""
        last = ""
        while True:
            rows = self._fetch(f"SELECT {_COLUMNS} FROM content_keys WHERE key_id > {self._mark} "
                               f"ORDER BY key_id LIMIT {_BATCH}", (last,))
            for row in rows:
                yield _record(row)
            if len(rows) < _BATCH:
                return
            last = rows[-1][0]

    def counts(self) -> KeyCounts:
        """How many keys, how many destroyed."""
        rows = self._fetch("SELECT COUNT(*), COUNT(destroyed_at) FROM content_keys", ())
        return KeyCounts(keys=int(rows[0][0]), destroyed=int(rows[0][1]))

    def live_of(self, subject: str, *, created_before: float | None = None) -> int:
        """How many live keys ``subject`` has (made before ``created_before``)."""
        m = self._mark
        sql = f"SELECT COUNT(*) FROM content_keys WHERE subject = {m} AND secret IS NOT NULL"
        params: list[Any] = [subject]
        if created_before is not None:
            sql += f" AND created_at <= {m}"
            params.append(created_before)
        return int(self._fetch(sql, params)[0][0])


def record_row(record: KeyRecord) -> tuple[Any, ...]:
    """``record``'s values in the order of the table's columns."""
    return (record.key_id, record.subject, record.period, record.scope, record.secret,
            record.created_at, record.destroyed_at, record.due_at)


def _record(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(key_id=row[0], subject=row[1], period=int(row[2]), scope=row[3],
                     secret=None if row[4] is None else bytes(row[4]), created_at=float(row[5]),
                     destroyed_at=None if row[6] is None else float(row[6]),
                     due_at=None if row[7] is None else float(row[7]))


class MemoryKeyTable:
    """:class:`~eventstore.sealing.KeyTable` over a dict (the memory backend)."""

    def __init__(self, rows: dict[str, KeyRecord]) -> None:
        self._rows = rows

    def insert(self, record: KeyRecord) -> None:
        """Add a key."""
        self._rows[record.key_id] = record

    def insert_many(self, records: Sequence[KeyRecord]) -> None:
        """Add keys."""
        for record in records:
            self.insert(record)

    def find_many(self, wanted: Sequence[tuple[str, int, str]]
                  ) -> dict[tuple[str, int, str], tuple[str, bytes]]:
        """The live key of each ``(subject, period, scope)`` that has one."""
        found = {}
        for triple in wanted:
            key = self.find(*triple)
            if key is not None:
                found[triple] = key
        return found

    def find(self, subject: str, period: int, scope: str) -> tuple[str, bytes] | None:
        """The live key of ``(subject, period, scope)``."""
        for record in self._rows.values():
            if (record.subject, record.period, record.scope) == (subject, period, scope) \
                    and record.secret is not None and record.due_at is None:
                return record.key_id, record.secret
        return None

    def secrets(self, key_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The secret of each key that exists."""
        return {k: self._rows[k].secret for k in key_ids if k in self._rows}

    def destroy(self, shred: Shred, now: float) -> int:
        """Apply ``shred``."""
        count = 0
        selective = shred.subject is not None or shred.scope_prefix is not None \
            or shred.before_period is not None
        for key_id, r in list(self._rows.items()):
            if r.secret is None:
                continue
            hit = selective and (shred.subject is None or r.subject == shred.subject) and (
                shred.scope_prefix is None or r.scope.startswith(shred.scope_prefix)) and (
                shred.keep_scope is None or r.scope != shred.keep_scope) and (
                shred.before_period is None or r.period < shred.before_period) and (
                shred.made_before is None or r.created_at <= shred.made_before)
            if hit and shred.delay_s > 0:
                due = now + shred.delay_s
                if r.due_at is None or r.due_at > due:
                    self._rows[key_id] = _replace(r, due_at=due)
                    count += 1
            elif hit or (shred.due and r.due_at is not None and r.due_at <= (
                    now if shred.due_by is None else shred.due_by)):
                self._rows[key_id] = _replace(r, secret=None, destroyed_at=now)
                count += 1
        return count

    def epoch(self) -> float:
        """The latest destruction time (0: none)."""
        return max((r.destroyed_at or 0.0 for r in self._rows.values()), default=0.0)

    def records(self) -> Iterator[KeyRecord]:
        """Every key, in key id order."""
        return iter([self._rows[k] for k in sorted(self._rows)])

    def counts(self) -> KeyCounts:
        """How many keys, how many destroyed."""
        return KeyCounts(keys=len(self._rows),
                         destroyed=sum(r.destroyed_at is not None for r in self._rows.values()))

    def live_of(self, subject: str, *, created_before: float | None = None) -> int:
        """How many live keys ``subject`` has (made before ``created_before``)."""
        return sum(r.subject == subject and r.secret is not None and (
            created_before is None or r.created_at <= created_before) for r in self._rows.values())


def _replace(record: KeyRecord, **changes: Any) -> KeyRecord:
    fields: Mapping[str, Any] = {
        "key_id": record.key_id, "subject": record.subject, "period": record.period,
        "scope": record.scope, "secret": record.secret, "created_at": record.created_at,
        "destroyed_at": record.destroyed_at, "due_at": record.due_at}
    return KeyRecord(**{**fields, **changes})
