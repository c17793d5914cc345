"""Every test in this folder runs on every backend (the ``backend`` fixture is
parametrised), as the eventsourcing library's recorder tests do: a backend is
correct when it passes them all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore import EventStore

from ..backends import BACKENDS, Backend, open_store


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[EventStore]:
    opened = await open_store(backend)
    try:
        yield opened
    finally:
        await opened.close()
