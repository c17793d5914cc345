"""The event loop the long-running commands (``personae run``, ``personae chat``) use.

uvloop where it is installed (Linux and macOS; a dependency there): the bot's one loop
does everything from gateway frames to HTTP calls, and on uvloop it spends 10-15 % less
CPU per reply (docs/benchmarks.md). asyncio's own loop elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop and return its result."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
