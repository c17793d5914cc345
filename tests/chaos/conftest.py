"""Chaos tests: the real ``personae run`` process against the emulator and the fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import ChaosRig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[ChaosRig]:
    """40 conversations, each in a channel of its own; the bot is not started yet."""
    async with ChaosRig.open(tmp_path, conversations=40) as opened:
        yield opened
