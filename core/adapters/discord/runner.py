"""How the Discord client stopped, as one sentence the user can act on.

A start-up failure the user can fix (rejected token, refused intent...) becomes
:class:`CannotRun` with one sentence saying what to do; anything else is a bug and is
raised as it is.
"""

from __future__ import annotations

import asyncio

import disnake

from ...config import Config
from ...coordination import CoordinationError

INTENT_HELP = (
    "Discord refused the Message Content intent: switch it on in the Developer Portal > "
    "your application > Bot > Privileged Gateway Intents > Message Content Intent, "
    "then run `personae run` again."
)


class CannotRun(Exception):
    """The bot could not run; the message is one sentence saying what to do."""


def raise_for(task: asyncio.Task[None], config: Config) -> None:
    """Turn how the Discord client stopped into one sentence (or re-raise a bug)."""
    error = task.exception() if not task.cancelled() else None
    if isinstance(error, disnake.LoginFailure):
        raise CannotRun(f"Discord rejected the token in {config.discord.token_env}: copy a "
                        "fresh one from the Developer Portal > your application > Bot > Reset Token.")
    if isinstance(error, disnake.PrivilegedIntentsRequired):
        raise CannotRun(INTENT_HELP)
    if isinstance(error, disnake.ConnectionClosed) and error.code == 4004:
        raise CannotRun(f"Discord closed the connection because the token in "
                        f"{config.discord.token_env} is invalid: copy a fresh one from the "
                        "Developer Portal > your application > Bot > Reset Token.")
    if isinstance(error, disnake.SessionStartLimitReached):
        raise CannotRun("Discord's daily limit of gateway logins is used up; wait for it "
                        "to reset (at most 24 hours) before starting the bot again.")
    if isinstance(error, CoordinationError):
        raise CannotRun(str(error))
    if isinstance(error, (disnake.HTTPException, OSError)):
        raise CannotRun(f"could not reach Discord at {config.discord.api_base_url}: {error}")
    if error is not None:
        raise error
    raise CannotRun("the Discord connection closed unexpectedly")
