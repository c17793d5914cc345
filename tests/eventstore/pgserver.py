"""The PostgreSQL server the tests use: ``PERSONAE_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each test in schemas of its own, dropped
afterwards. No server: the test is skipped with one line, unless
``PERSONAE_REQUIRE_POSTGRES=1`` (CI), where that is a failure."""

from __future__ import annotations

import functools
import itertools
import os

import psycopg
import pytest

from eventstore.postgres.target import PostgresTarget

URL_ENV = "PERSONAE_TEST_POSTGRES_URL"
REQUIRE_ENV = "PERSONAE_REQUIRE_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = f"personae_test_{os.getpid()}_"

_numbers = itertools.count(1)
_made = [0]  # schemas named so far, and (below) those already dropped
_dropped = [0]


def server_url() -> str:
    """The server's URL, without a schema."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


@functools.cache
def _unavailable() -> str | None:
    try:
        target = PostgresTarget.parse(server_url())
        with psycopg.connect(**target.connect_kwargs(connect_timeout=3)):
            return None
    except Exception as exc:  # any reason at all: it is reported in one line
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


def require_server() -> None:
    """Skip (or, with PERSONAE_REQUIRE_POSTGRES=1, fail) the test when no server answers."""
    reason = _unavailable()
    if reason is None:
        return
    message = f"no PostgreSQL server at {server_url()} ({reason}); set {URL_ENV}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
    pytest.skip(message)


def new_schema_url() -> str:
    """A URL naming a schema no test has used (it does not exist yet)."""
    require_server()
    separator = "&" if "?" in server_url() else "?"
    _made[0] = next(_numbers)
    return f"{server_url()}{separator}schema={SCHEMA_PREFIX}{_made[0]}"


def admin() -> psycopg.Connection:
    """A plain autocommit connection to the test database (for tampering and cleaning up)."""
    return psycopg.connect(**PostgresTarget.parse(server_url()).connect_kwargs(autocommit=True))


def drop_test_schemas() -> None:
    """Drop every schema this test process made (nothing to do when none was named since)."""
    if _made[0] == _dropped[0] or _unavailable() is not None:
        return
    _dropped[0] = _made[0]
    with admin() as conn:
        names = [n for (n,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (SCHEMA_PREFIX,))]
        for name in names:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
