"""What every command shares: the config path, logging, and turning user errors into
one clear sentence and a non-zero exit instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import click
from rich.console import Console

from eventstore import EventStoreError, Log, Projection, open_log

from ..config import Config, load_config
from ..credentials import MissingSecret, Secrets
from ..logs import Redactor, setup_logging
from ..problems import ProblemsError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USER_ERROR = 2


@dataclass
class CliContext:
    """Per-invocation state, created by the top-level group and passed to commands."""

    config_path: Path
    log_format: Literal["text", "json"] | None
    log_level: str | None
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    _config: Config | None = None
    _secrets: Secrets | None = None
    _redactor: Redactor | None = None

    @property
    def config(self) -> Config:
        """The validated config; logging is set up the first time it is asked for."""
        if self._config is None:
            self._config = load_config(self.config_path)
            self._redactor = setup_logging(
                level=self.log_level or self._config.logging.level,
                fmt=self.log_format or self._config.logging.format,
                secrets=self.secrets.sensitive_values(self._config.secret_names()),
            )
        return self._config

    def protect(self, names: Iterable[str]) -> None:
        """Redact the values of these environment variables from every log line too."""
        if self._redactor is not None:
            self._redactor.add(self.secrets.sensitive_values(list(names)))

    def open_log(self, *, create: bool = False, read_only: bool = False,
                 projections: bool = False) -> Log:
        """The event log config.yaml names, events upcast on read. ``create``: make it, or
        migrate it, when needed, as its one writer (refused while a bot runs on it);
        ``read_only``: for commands that only read, which take no lock and work on a
        read-only file. With ``projections``, the bot's projections are kept too:
        opening catches them up (building those that never ran), as the log's one
        writer."""
        from ..events import upcasters  # the catalogue, only for commands that read the log

        kept: tuple[Projection, ...] = ()
        if projections:
            from ..dispatcher.projection import projections as bot_projections

            kept = bot_projections()
        database = self.config.database
        return open_log(database.url, synchronous=database.synchronous, upcasters=upcasters(),
                        create=create, password=database.password(self.secrets),
                        read_only=read_only, lock=create or bool(kept), projections=kept,
                        seal=self.config.privacy.encrypt)

    @property
    def secrets(self) -> Secrets:
        """Environment variables over the ``.env`` next to config.yaml."""
        if self._secrets is None:
            env_file = self._config.env_file if self._config else self.config_path.parent / ".env"
            self._secrets = Secrets.load(env_file)
        return self._secrets


pass_context = click.make_pass_decorator(CliContext)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report a user's mistake as its message on stderr, exit 2, and no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ProblemsError as exc:
            _print_error("\n".join(str(p) for p in exc.problems))
        except (EventStoreError, MissingSecret) as exc:
            _print_error(str(exc))
        raise SystemExit(EXIT_USER_ERROR)

    return wrapper


def _print_error(text: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {text}", markup=True,
                                                 soft_wrap=True)
    sys.stderr.flush()
