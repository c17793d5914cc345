"""A PostgreSQL schema of its own per test (skipped, or failed in CI, without a server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.eventstore import pgserver


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield pgserver.new_schema_url()
    pgserver.drop_test_schemas()
