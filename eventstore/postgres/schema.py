"""The PostgreSQL log's schema: its tables, the triggers that keep it append-only and
ordered, and the numbered migrations that build it.

The schema version is the highest ``version`` in ``personae_schema``. Missing migrations
run on open, all in one transaction, under an advisory lock, so two processes opening a
new log at once do not both build it; a log written by a newer personae is refused before
anything is written to it.

Two guarantees live in the database itself, for every connection, not only ours:

- append-only: ``UPDATE``, ``DELETE`` and ``TRUNCATE`` of ``events`` raise;
- commit order: every ``INSERT`` into ``events`` first takes the log's append lock (a
  transaction-scoped advisory lock, held until COMMIT), and is refused unless its
  positions follow every position already in the log. Positions are therefore given out
  one transaction at a time, in the order transactions commit, so a reader that has seen
  position P has seen every event committed before it: ``WHERE position > P`` never skips
  a late commit. The same trigger sends the log's NOTIFY, so followers in other processes
  hear of every commit, whoever made it.

The triggers are ``ENABLE ALWAYS``: they fire under ``session_replication_role =
replica`` too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg

from ..errors import StoreOpenError

APPEND_LOCK = 0x50455253
"""First key of the log's append lock, ``pg_advisory_xact_lock(APPEND_LOCK, <oid of the
events table>)``: one lock per log, whatever the schema. (Advisory locks in two int4 keys
do not overlap those in one int8 key.)"""

MIGRATION_LOCK = 0x50455254
"""First key of the lock migrations take, with ``hashtext(<schema>)`` as the second."""

CHANNEL_PREFIX = "personae_events_"
"""NOTIFY channel of a log: this and the oid of its events table."""

WRITER_SETTING = "personae.writer"
"""A session setting naming the writer; the NOTIFY payload carries it, so a listener
can tell its own store's commits from others'."""

Migration = Callable[[psycopg.Connection, str], None]


def trigger_functions(schema: str) -> dict[str, str]:
    """The body of each trigger function of a log in ``schema``, as ``db check`` expects it."""
    return {
        "personae_refuse_change": """
BEGIN
    RAISE EXCEPTION 'the event log is append-only: events cannot be %',
        CASE TG_OP WHEN 'UPDATE' THEN 'updated' WHEN 'DELETE' THEN 'deleted'
        ELSE 'truncated' END
        USING ERRCODE = 'integrity_constraint_violation';
END
""",
        "personae_take_append_lock": f"""
BEGIN
    PERFORM pg_advisory_xact_lock({APPEND_LOCK}, TG_RELID::integer);
    RETURN NULL;
END
""",
        "personae_after_append": f"""
DECLARE
    first_position bigint;
    added bigint;
BEGIN
    SELECT min(position), count(*) INTO first_position, added FROM inserted;
    IF added > 0 AND (SELECT count(*) FROM "{schema}".events
                      WHERE position >= first_position) <> added THEN
        RAISE EXCEPTION 'the event log is append-only: position % is not after every '
            'position already in the log', first_position
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    PERFORM pg_notify('{CHANNEL_PREFIX}' || TG_RELID::text,
                      coalesce(current_setting('{WRITER_SETTING}', true), ''));
    RETURN NULL;
END
""",
    }


TRIGGERS = {
    "events_no_update": ("BEFORE UPDATE", "personae_refuse_change"),
    "events_no_delete": ("BEFORE DELETE", "personae_refuse_change"),
    "events_no_truncate": ("BEFORE TRUNCATE", "personae_refuse_change"),
    "events_append_lock": ("BEFORE INSERT", "personae_take_append_lock"),
    "events_after_append": ("AFTER INSERT", "personae_after_append"),
}
"""Every trigger on ``events``: when it fires (for each statement) and its function."""


def trigger_definition(schema: str, name: str) -> str:
    """``CREATE TRIGGER`` for ``name`` as ``pg_get_triggerdef`` prints it back."""
    when, function = TRIGGERS[name]
    referencing = " REFERENCING NEW TABLE AS inserted" if name == "events_after_append" else ""
    return (f"CREATE TRIGGER {name} {when} ON {schema}.events{referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()")


def _migrate_to_1(conn: psycopg.Connection, schema: str) -> None:
    # Text compared or sorted by the log is COLLATE "C": code point order, as in SQLite
    # and Python, so id prefixes are index ranges and every backend sorts alike.
    # data is json (not jsonb): the text exactly as written, checked to be JSON.
    conn.execute(f"""
        CREATE TABLE "{schema}".events (
            position bigint PRIMARY KEY CHECK (position > 0),
            event_id text COLLATE "C" NOT NULL,
            stream_id text COLLATE "C" NOT NULL,
            version bigint NOT NULL CHECK (version > 0),
            type text COLLATE "C" NOT NULL,
            schema_version integer NOT NULL,
            data json NOT NULL,
            recorded_at double precision NOT NULL,
            correlation_id text,
            causation_id text,
            CONSTRAINT events_event_id UNIQUE (event_id),
            CONSTRAINT events_stream_version UNIQUE (stream_id, version)
        )""")
    conn.execute(f'CREATE INDEX events_type_position ON "{schema}".events (type, position)')
    conn.execute(f'CREATE INDEX events_recorded_at ON "{schema}".events (recorded_at)')
    conn.execute(f"""
        CREATE TABLE "{schema}".projection_positions (
            name text COLLATE "C" PRIMARY KEY,
            version integer NOT NULL,
            position bigint NOT NULL
        )""")
    for function, body in trigger_functions(schema).items():
        # custom plans: a generic one made while the log was small would scan it
        conn.execute(f'CREATE FUNCTION "{schema}".{function}() RETURNS trigger '
                     "LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan "
                     f"AS $body${body}$body$")
    for name in TRIGGERS:
        conn.execute(trigger_definition(f'"{schema}"', name))
        conn.execute(f'ALTER TABLE "{schema}".events ENABLE ALWAYS TRIGGER {name}')


def _migrate_to_2(conn: psycopg.Connection, schema: str) -> None:
    # The key table of sealed content (eventstore/sealing.py): mutable, unlike events.
    conn.execute(f"""
        CREATE TABLE "{schema}".content_keys (
            key_id text COLLATE "C" PRIMARY KEY,
            subject text COLLATE "C" NOT NULL,
            period integer NOT NULL,
            scope text COLLATE "C" NOT NULL,
            secret bytea,
            created_at double precision NOT NULL,
            destroyed_at double precision,
            due_at double precision
        )""")
    # as on SQLite: scope first serves finding a key and shredding a message
    conn.execute(f'CREATE INDEX content_keys_scope ON "{schema}".content_keys '
                 "(scope, subject, period)")
    conn.execute(f'CREATE INDEX content_keys_period ON "{schema}".content_keys (period)')
    conn.execute(f'CREATE INDEX content_keys_destroyed ON "{schema}".content_keys '
                 "(destroyed_at) WHERE destroyed_at IS NOT NULL")
    conn.execute(f'CREATE INDEX content_keys_due ON "{schema}".content_keys (due_at) '
                 "WHERE due_at IS NOT NULL")


MIGRATIONS: tuple[Migration, ...] = (_migrate_to_1, _migrate_to_2)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection, schema: str) -> int | None:
    """The log's schema version, None when ``schema`` holds no log."""
    # the catalog as of this statement (to_regclass would answer from this session's
    # cache, which may not know yet of a log another opener has just committed)
    exists = conn.execute("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                          "c.relnamespace WHERE n.nspname = %s AND c.relname = "
                          "'personae_schema'", (schema,)).fetchone()
    if exists is None:
        return None
    row = conn.execute(f'SELECT coalesce(max(version), 0) FROM "{schema}".personae_schema'
                       ).fetchone()
    return int(row[0]) if row else 0


def prepare(conn: psycopg.Connection, schema: str, location: str, *, create: bool,
            migrations: Sequence[Migration] | None = None) -> None:
    """Make ``schema`` a log of the newest version (``create``), or check it is one.

    ``migrations`` defaults to :data:`MIGRATIONS`. Raises :class:`StoreOpenError` for a
    log written by a newer personae, a schema holding someone else's tables, or (without
    ``create``) no log at all.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    newest = len(migrations)
    with conn.transaction():
        found = schema_version(conn, schema)
        if found is not None and found == newest:
            return  # the usual open: no lock, nothing to do
        _refuse(found, conn, schema, location, create=create, newest=newest)
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        found = schema_version(conn, schema)  # another process may have built it meanwhile
        _refuse(found, conn, schema, location, create=create, newest=newest)
        if found is None:
            conn.execute(f'CREATE TABLE "{schema}".personae_schema (version integer PRIMARY KEY, '
                         "migrated_at double precision NOT NULL)")
            found = 0
        for target in range(found + 1, newest + 1):
            migrations[target - 1](conn, schema)
            conn.execute(f'INSERT INTO "{schema}".personae_schema VALUES (%s, %s)',
                         (target, time.time()))


def _refuse(found: int | None, conn: psycopg.Connection, schema: str, location: str, *,
            create: bool, newest: int) -> None:
    if found is not None and found > newest:
        raise StoreOpenError(
            f"{location} was written by a newer personae (log schema {found}; this version "
            f"understands up to {newest}); upgrade personae to open it")
    if found is not None:
        return
    if not create:
        raise StoreOpenError(f"there is no event log at {location} yet (`personae db init` "
                             "creates it)")
    found_tables = [name for (name,) in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1",
        (schema,))]
    # a log another opener committed since this one looked is a log, not foreign tables
    foreign = [] if "personae_schema" in found_tables else found_tables[:4]
    if foreign:
        raise StoreOpenError(
            f"the schema {schema} at {location} holds tables that are not a personae log "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), so personae "
            "will not touch it; name an empty or new schema with ?schema=... in the URL")
