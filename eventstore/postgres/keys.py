"""The key table of sealed content on PostgreSQL: the SQL key table, with batches as arrays.

A batch's keys go as one array per column (``unnest``): one statement text whatever the
batch's size, so the server prepares and plans it once per connection, and each wanted
key is one probe of the ``(scope, subject, period)`` index. (ORed equalities, which
SQLite needs, make PostgreSQL plan a new text per batch size and, on a table whose
statistics lag, scan every key of the period.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..keys import Fetch, SqlKeyTable, record_row
from ..sealing import KeyRecord
from .arrays import array, columns, placeholders

_INSERT_TYPES = ("text", "text", "integer", "text", "bytea", "double precision",
                 "double precision", "double precision")
_INSERT = ("INSERT INTO content_keys (key_id, subject, period, scope, secret, created_at, "
           f"destroyed_at, due_at) SELECT * FROM unnest({placeholders(_INSERT_TYPES)})")
# LATERAL with LIMIT 1 (a key is unique per triple among live ones): a probe per triple,
# which the planner cannot turn into a scan of the table joined by hash
_FIND = ("SELECT u.subject, u.period, u.scope, k.key_id, k.secret FROM unnest(%b::text[], "
         "%b::integer[], %b::text[]) AS u(subject, period, scope) CROSS JOIN LATERAL "
         "(SELECT key_id, secret FROM content_keys WHERE scope = u.scope AND subject = "
         "u.subject AND period = u.period AND secret IS NOT NULL AND due_at IS NULL "
         "LIMIT 1) AS k")


Send = Callable[[str, Sequence[Any]], object]
"""Queue a statement whose result nobody reads (a pipeline's next wait reports its error)."""


class PostgresKeyTable(SqlKeyTable):
    """:class:`~eventstore.keys.SqlKeyTable` on a psycopg connection's ``fetch``. With
    ``send`` (a pipeline's), new keys go without waiting for the server: the append that
    makes them waits once, at its end, as it does for its rows."""

    def __init__(self, fetch: Fetch, send: Send | None = None) -> None:
        super().__init__(fetch, "%s")
        self._send: Send = send or fetch

    def insert_many(self, records: Sequence[KeyRecord]) -> None:
        """Add keys, in one statement."""
        if records:
            self._send(_INSERT, columns(_INSERT_TYPES, (record_row(r) for r in records)))

    def find_many(self, wanted: Sequence[tuple[str, int, str]]
                  ) -> dict[tuple[str, int, str], tuple[str, bytes]]:
        """The live key of each ``(subject, period, scope)`` that has one, in one query."""
        if not wanted:
            return {}
        subjects, periods, scopes = zip(*wanted, strict=True)
        return {(subject, int(period), scope): (key_id, bytes(secret))
                for subject, period, scope, key_id, secret in self._fetch(_FIND, [
                    array("text", subjects), array("integer", periods),
                    array("text", scopes)])}

