"""Credentials (secrets) come from the environment or a ``.env`` file, never from config.yaml.

:class:`Secrets` is the one place that reads them; the logging set-up asks it for
every value it holds so those values can be redacted from every log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values


class MissingSecret(Exception):
    """A secret that a feature needs is not set. The message names the variable."""


class Secrets:
    """Environment variables, with a ``.env`` file's values underneath them.

    The process environment wins over ``.env``; neither is ever written to.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @classmethod
    def load(cls, env_file: Path | None, environ: Mapping[str, str] | None = None) -> Secrets:
        """Read ``env_file`` (if it exists), then overlay ``environ`` (default: os.environ)."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls(values)

    def get(self, name: str) -> str | None:
        """The value of the variable ``name``, or None when it is unset or empty."""
        return self._values.get(name) or None

    def require(self, name: str, purpose: str) -> str:
        """The value of ``name``; raises :class:`MissingSecret` saying what to set and why."""
        value = self.get(name)
        if value is None:
            raise MissingSecret(
                f"set the environment variable {name} (or put {name}=... in a .env file next "
                f"to config.yaml) {purpose}"
            )
        return value

    def sensitive_values(self, names: list[str]) -> list[str]:
        """The values of ``names`` that are set, for redaction."""
        return [v for n in names if (v := self.get(n))]
