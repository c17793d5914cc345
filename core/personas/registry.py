"""The personas serving right now: a snapshot replaced whole on every reload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .loader import PersonaSet
from .model import Persona


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """What one :meth:`PersonaRegistry.replace` did, by persona id."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    """Personas whose file is broken now; their last good version keeps serving."""

    @property
    def changed(self) -> tuple[str, ...]:
        """Ids whose serving version is new (added or updated)."""
        return self.added + self.updated


class PersonaRegistry:
    """Holds the last good version of every persona.

    :meth:`replace` takes a fresh load of the whole directory: a file that loaded
    serves its new version, a file that failed keeps serving its last good version,
    and a persona whose file is gone is retired.
    """

    def __init__(self, personas: Iterable[Persona] = ()) -> None:
        self._by_id: dict[str, Persona] = {p.id: p for p in personas}

    def get(self, persona_id: str) -> Persona | None:
        """The serving version of ``persona_id``, or None."""
        return self._by_id.get(persona_id)

    def all(self) -> tuple[Persona, ...]:
        """Every serving persona, by id."""
        return tuple(self._by_id[i] for i in sorted(self._by_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def preview(self, loaded: PersonaSet) -> tuple[dict[str, Persona], RegistryChange]:
        """What :meth:`replace` would serve and change, without changing anything."""
        serving = dict(loaded.personas)
        kept: list[str] = []
        for persona in self._by_id.values():
            if persona.id not in serving and persona.source_path in loaded.failed_files:
                serving[persona.id] = persona
                kept.append(persona.id)
        old = self._by_id
        change = RegistryChange(
            added=tuple(sorted(i for i in serving if i not in old)),
            updated=tuple(sorted(
                i for i in serving if i in old and serving[i].version != old[i].version
            )),
            retired=tuple(sorted(i for i in old if i not in serving)),
            kept=tuple(sorted(kept)),
        )
        return serving, change

    def replace(self, loaded: PersonaSet) -> RegistryChange:
        """Serve ``loaded`` (a load of the whole directory), keeping the last good
        version of each persona whose file failed to load."""
        serving, change = self.preview(loaded)
        self._by_id = serving
        return change

