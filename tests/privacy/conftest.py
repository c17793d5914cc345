"""The replay tests' recorded conversation (a real dispatcher, the fake model, an SQLite
file), for the erasure tests, and PostgreSQL schemas dropped after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.eventstore.backends import PostgresBackend
from tests.replay.conftest import fake_openai, flow  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    PostgresBackend.clean_up()
