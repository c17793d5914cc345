"""``personae db check`` on PostgreSQL: the log's invariants, and the triggers that keep them.

What the database enforces is only as good as its triggers, so they are checked first:
each present, ``ENABLE ALWAYS``, defined as the migrations define it, its function's body
unchanged. Then what a broken or bypassed trigger would have let through: stream versions
1..n without gaps, positions positive, no projection past the end of the log.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg

from ..model import Violation
from . import schema


def check_log(conn: psycopg.Connection, schema_name: str) -> list[Violation]:
    """Check the log in ``schema_name`` in one snapshot; empty when it is healthy."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # definitions print schema-qualified names whatever the session's search_path
        conn.execute("SET LOCAL search_path TO pg_catalog")
        return list(_violations(conn, schema_name))


def _violations(conn: psycopg.Connection, name: str) -> Iterator[Violation]:
    version = schema.schema_version(conn, name)
    if version is None:
        yield Violation("schema", f"the schema {name} holds no personae log")
        return
    if version != schema.SCHEMA_VERSION:
        newer = version > schema.SCHEMA_VERSION
        yield Violation("schema", f"log schema is {version}, {'newer' if newer else 'older'} "
                        f"than this personae's {schema.SCHEMA_VERSION}"
                        + ("" if newer else "; `personae db init` migrates it"))
        return
    yield from _triggers(conn, name)
    gaps = conn.execute(
        f'SELECT stream_id, count(*), min(version), max(version) FROM "{name}".events '
        "GROUP BY stream_id HAVING min(version) <> 1 OR max(version) <> count(*) "
        "ORDER BY stream_id LIMIT 20").fetchall()
    for stream_id, count, low, high in gaps:
        yield Violation("gap-free versions",
                        f"stream {stream_id!r} has {count} events but versions {low}..{high}")
    row = conn.execute(f'SELECT coalesce(min(position), 1), coalesce(max(position), 0) '
                       f'FROM "{name}".events').fetchone()
    first, last = row if row else (1, 0)
    if first < 1:
        yield Violation("positions", f"position {first} is not positive")
    for projection, position in conn.execute(
            f'SELECT name, position FROM "{name}".projection_positions ORDER BY name'):
        if position > last:
            yield Violation("projection position", f"projection {projection!r} claims position "
                            f"{position}, past the log's end {last}")


def _triggers(conn: psycopg.Connection, name: str) -> Iterator[Violation]:
    quoted = conn.execute("SELECT quote_ident(%s)", (name,)).fetchone()
    qualified = quoted[0] if quoted else name
    found = {trigger: (enabled, definition) for trigger, enabled, definition in conn.execute(
        "SELECT t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "WHERE t.tgrelid = to_regclass(%s) AND NOT t.tgisinternal",
        (f'"{name}".events',))}
    for trigger in schema.TRIGGERS:
        if trigger not in found:
            yield Violation("append-only", f"the trigger {trigger} is missing")
            continue
        enabled, definition = found[trigger]
        if enabled != "A":
            state = {"D": "disabled", "O": "enabled for ordinary sessions only",
                     "R": "enabled for replicas only"}.get(enabled, enabled)
            yield Violation("append-only", f"the trigger {trigger} is {state}, not ENABLE ALWAYS")
        if definition != schema.trigger_definition(qualified, trigger):
            yield Violation("append-only", f"the trigger {trigger} was redefined: {definition}")
    bodies: dict[str, str] = dict(conn.execute(
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s", (name,)).fetchall())
    for function, body in schema.trigger_functions(name).items():
        if function not in bodies:
            yield Violation("append-only", f"the trigger function {function} is missing")
        elif bodies[function] != body:
            yield Violation("append-only", f"the trigger function {function} was changed")
