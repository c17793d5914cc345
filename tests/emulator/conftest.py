"""Fixtures: an emulator with a small guild, and real disnake bots pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import disnake
from disnake.ext import commands

from tests.fakes.discord import (
    fast_client_options,
)

T = TypeVar("T")


def make_bot(*, message_content: bool = True, **options: object) -> commands.InteractionBot:
    intents = disnake.Intents.default()
    intents.message_content = message_content
    return commands.InteractionBot(intents=intents, **fast_client_options(), **options)


async def eventually(condition: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
    """Poll a client-side condition (disnake state has no change notifications)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout} s")
        await asyncio.sleep(0.01)


def collect(bot: disnake.Client, event: str) -> list[object]:
    """A list that fills with the first argument of every ``event`` the bot dispatches."""
    seen: list[object] = []

    async def listener(*args: object) -> None:
        seen.append(args[0] if args else None)

    bot.add_listener(listener, event)
    return seen
