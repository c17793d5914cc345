"""A persona's tools, ready to call: built from its ``tools`` field, offered to the model
as definitions, and run one call at a time with the arguments checked against the
tool's schema and the call bounded in time. A call never raises: a bad argument, a
timeout, an HTTP error or a tool's own bug becomes an error result the model reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import jsonschema

from ..credentials import Secrets
from ..gateway.model import ToolCall, ToolDefinition
from ..personas.model import Persona, ToolSpec
from .base import Tool, ToolContext, ToolError
from .builtins import Lore, Now, Roll
from .http import HttpTool
from .plugins import PluginTool

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 16_000
"""Most characters of one tool result given to the model (and recorded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutcome:
    """What one call gave the model: ``content`` (the error's sentence when not ``ok``);
    ``error`` is a short class (``invalid_arguments``, ``unknown_tool``, ``timeout``,
    ``tool_error``, ``internal_error``)."""

    ok: bool
    content: str
    error: str | None = None
    duration_s: float = 0.0


class Toolbox:
    """Builds and runs personas' tools (see the module docstring)."""

    def __init__(self, secrets: Secrets, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._secrets = secrets
        self._rng = rng or random.SystemRandom()
        self._clock = clock
        self._monotonic = monotonic
        self._session: aiohttp.ClientSession | None = None
        self._built: dict[tuple[str, str], dict[str, Tool]] = {}

    def definitions(self, persona: Persona) -> tuple[ToolDefinition, ...]:
        """The tools offered to ``persona``'s model (a plugin that cannot load is left out)."""
        found = []
        for name, tool in self._tools(persona).items():
            try:
                found.append(tool.definition)
            except ToolError as exc:
                log.warning("persona %s: tool %s left out: %s", persona.id, name, exc)
        return tuple(found)

    async def run(self, persona: Persona, call: ToolCall, timeout_s: float) -> ToolOutcome:
        """Run ``call`` for ``persona`` within ``timeout_s`` (never raises)."""
        started = self._monotonic()
        outcome = await self._run(persona, call, max(timeout_s, 0.0))
        return ToolOutcome(ok=outcome.ok, content=_capped(outcome.content), error=outcome.error,
                           duration_s=round(self._monotonic() - started, 6))

    async def aclose(self) -> None:
        """Close the HTTP connections of HTTP tools."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, persona: Persona, call: ToolCall, timeout_s: float) -> ToolOutcome:
        tool = self._tools(persona).get(call.name)
        if tool is None:
            known = ", ".join(self._tools(persona)) or "none"
            return _failed("unknown_tool", f"there is no tool named {call.name!r} "
                                           f"(tools: {known})")
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            return _failed("invalid_arguments", f"the arguments are not JSON ({exc.msg})")
        if not isinstance(arguments, dict):
            return _failed("invalid_arguments", "the arguments must be a JSON object")
        try:
            schema = tool.definition.parameters
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(schema).iter_errors(arguments))
        except ToolError as exc:
            return _failed("tool_error", str(exc))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            return _failed("invalid_arguments",
                           f"invalid arguments{' at ' + where if where else ''}: "
                           f"{error.message}")
        context = ToolContext(persona=persona, clock=self._clock)
        try:
            async with asyncio.timeout(timeout_s):
                content = await tool.call(arguments, context)
        except TimeoutError:
            return _failed("timeout", f"{call.name} did not finish within {timeout_s:g} s")
        except ToolError as exc:
            return _failed("tool_error", str(exc))
        except Exception as exc:
            log.exception("tool %s failed", call.name)
            return _failed("internal_error", f"{call.name} failed ({type(exc).__name__})")
        return ToolOutcome(ok=True, content=content)

    def _tools(self, persona: Persona) -> dict[str, Tool]:
        key = (persona.id, persona.version)
        built = self._built.get(key)
        if built is None:
            built = {spec.name: self._tool(spec) for spec in persona.tools.entries}
            self._built = {k: v for k, v in self._built.items() if k[0] != persona.id}
            self._built[key] = built
        return built

    def _tool(self, spec: ToolSpec) -> Tool:
        if spec.kind == "http":
            return HttpTool(spec, self._secrets, self._http_session)
        if spec.kind == "plugin":
            return PluginTool(spec.name)
        if spec.name == "roll":
            return Roll(self._rng)
        return Now() if spec.name == "now" else Lore()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session


def _failed(error: str, sentence: str) -> ToolOutcome:
    return ToolOutcome(ok=False, content=f"error: {sentence}", error=error)


def _capped(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[… {len(text) - MAX_RESULT_CHARS} more characters cut]"

