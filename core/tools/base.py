"""What every tool is: a definition the model is offered, and an async call that turns
validated arguments into text for the model (or raises :class:`ToolError`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..gateway.model import ToolDefinition
from ..personas.model import Persona


class ToolError(Exception):
    """A tool could not do what was asked; the message is a safe sentence for the model
    (and the log): never a secret, a traceback or a raw response with credentials."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """What a call may know: the persona answering, and the time."""

    persona: Persona
    clock: Callable[[], float]


class Tool(Protocol):
    """A callable tool."""

    @property
    def definition(self) -> ToolDefinition:
        """Its name, description and arguments' JSON Schema, as offered to the model."""
        ...

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """The result for the model (arguments already checked against the schema)."""
        ...
