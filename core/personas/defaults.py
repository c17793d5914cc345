"""``persona_defaults`` from config.yaml, with the positions needed to blame a bad default
on config.yaml rather than on every persona file that inherits it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import CONFIG_LIMITS, Config
from ..problems import Problem, ProblemsError
from ..yamldoc import FieldPath, YamlDocument, dotted, load_yaml, read_yaml_file

DEFAULTS_KEY = "persona_defaults"


@dataclass(frozen=True)
class LocatedDefaults(Mapping[str, Any]):
    """Persona defaults that know where in config.yaml each value was written.

    It is a plain read-only mapping of the defaults, so it can be passed wherever
    ``defaults: Mapping`` is expected; the loader uses ``document`` when present.
    """

    data: Mapping[str, Any]
    document: YamlDocument | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def problem(self, path: FieldPath, message: str, *, key: bool = False) -> Problem:
        """A problem with the default at ``path`` (a persona field path)."""
        full = (DEFAULTS_KEY, *path)
        if self.document is None:
            return Problem("config.yaml", 1, 1, dotted(full), message)
        return self.document.problem(full, message, key=key)


def defaults_from_config(config: Config) -> LocatedDefaults:
    """``config.persona_defaults``, located in the config file when it can still be read."""
    try:
        document = load_yaml(read_yaml_file(config.source, CONFIG_LIMITS), str(config.source),
                             CONFIG_LIMITS)
    except (OSError, ProblemsError):
        document = None
    return LocatedDefaults(dict(config.persona_defaults), document)


def known_providers_from_config(config: Config) -> frozenset[str]:
    """Provider names a persona may use: config.yaml's providers plus the built-in offline."""
    return frozenset(config.providers) | {"offline"}
