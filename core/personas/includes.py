"""Lorebook files a persona includes: ``personas/lorebooks/NAME.yaml``.

A lorebook file holds entries shared by several personas (an imported World Info
file, say): ``name`` and ``description`` for people, and ``entries`` written as in a
persona's ``lorebook``. A persona adds them with ``lorebook: {include: [NAME]}``. Its
text becomes part of the persona's version (and is recorded with it), so a reply's
prompt can be rebuilt however the file changes later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..problems import Problem, ProblemsError
from ..yamldoc import YamlLimits, read_yaml_file

LOREBOOK_DIR = "lorebooks"
"""The folder, inside the personas folder, that holds lorebook files."""
LOREBOOK_LIMITS = YamlLimits(max_bytes=4 * 1024 * 1024, max_nodes=200_000, max_depth=64)
"""A lorebook file is held to a persona file's limits."""


class Includes(Protocol):
    """Where included lorebook files are read from."""

    def read(self, name: str) -> tuple[str, str] | None:
        """(the file's name for problems, its text), or None when there is none."""
        ...

    def where(self, name: str) -> str:
        """Where the file called ``name`` is expected (for the problem saying it is not)."""
        ...


class NoIncludes:
    """A persona loaded without any lorebook files (a text with no folder)."""

    def read(self, name: str) -> tuple[str, str] | None:
        """Nothing."""
        return None

    def where(self, name: str) -> str:
        """No folder to look in."""
        return f"{LOREBOOK_DIR}/{name}.yaml next to the persona file"


@dataclass
class DirectoryIncludes:
    """Lorebook files in ``directory`` (a personas folder's ``lorebooks``), remembering
    every text read so a cache can tell when one changed."""

    directory: Path
    read_texts: dict[str, str | None] = field(default_factory=dict)

    def read(self, name: str) -> tuple[str, str] | None:
        """The file ``NAME.yaml`` in the folder."""
        path = self.directory / f"{name}.yaml"
        self.read_texts[name] = None
        try:
            text = read_yaml_file(path, LOREBOOK_LIMITS)  # a file too big or not UTF-8 raises
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProblemsError([Problem(str(path), 1, 1, "", f"cannot read the file: {exc}")]
                                ) from None
        self.read_texts[name] = text
        return str(path), text

    def where(self, name: str) -> str:
        """``<folder>/NAME.yaml``."""
        return str(self.directory / f"{name}.yaml")

    def unchanged(self, seen: Mapping[str, str | None]) -> bool:
        """Whether every file in ``seen`` still holds the text it held then."""
        for name, text in seen.items():
            try:
                found = self.read(name)
            except ProblemsError:
                found = None
            if (found[1] if found else None) != text:
                return False
        return True


@dataclass(frozen=True)
class RecordedIncludes:
    """The lorebook texts recorded with a persona version."""

    texts: Mapping[str, str]

    def read(self, name: str) -> tuple[str, str] | None:
        """The recorded text of ``name``."""
        text = self.texts.get(name)
        return (f"<lorebook {name}>", text) if text is not None else None

    def where(self, name: str) -> str:
        """Not recorded with this version."""
        return f"the recorded version ({name} was not recorded with it)"


def includes_for(persona_file: Path) -> DirectoryIncludes:
    """The lorebook files a persona file at ``persona_file`` may include."""
    return DirectoryIncludes(persona_file.parent / LOREBOOK_DIR)
