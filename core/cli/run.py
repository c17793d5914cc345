"""``personae run``: the bot on Discord, until SIGINT or SIGTERM.

The token comes from the environment variable config.yaml names
(``discord.token_env``); REST calls go to ``discord.api_base_url``. A missing or
rejected token, or a refused Message Content intent, is one sentence saying what
to do, and exit status 2. See docs/discord.md.
"""

from __future__ import annotations

import click

from .. import eventloop
from .context import EXIT_USER_ERROR, CliContext, pass_context, user_errors


@click.command()
@pass_context
@user_errors
def run(ctx: CliContext) -> None:
    """Run the bot on Discord (stop with Ctrl-C or SIGTERM)."""
    # imported here: disnake takes most of a second to import, and other commands need none of it
    from ..adapters.discord.runner import CannotRun, serve

    config = ctx.config
    token = ctx.secrets.require(
        config.discord.token_env,
        "with the bot token (Developer Portal > your application > Bot > Reset Token)")
    try:
        eventloop.run(serve(config, ctx.secrets, token))
    except CannotRun as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_USER_ERROR) from None
