"""Tools installed by other packages, under the entry point group ``personae.tools``.

An entry point names an object with ``description`` (text), ``parameters`` (the JSON
Schema of its arguments) and an async ``run(arguments, context)`` returning text; a
class is instantiated without arguments first. The entry point's name is the tool's
name. A plugin that fails to load or misbehaves is an error for that call, never a
crash of the reply.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from ..gateway.model import ToolDefinition
from ..personas.tools import ENTRY_POINT_GROUP
from .base import ToolContext, ToolError


class PluginTool:
    """An installed tool, loaded on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loaded: Any = None

    def _plugin(self) -> Any:
        if self._loaded is None:
            found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == self._name]
            if not found:
                raise ToolError(f"the tool {self._name} is not installed")
            try:
                plugin = found[0].load()
                self._loaded = plugin() if inspect.isclass(plugin) else plugin
            except Exception as exc:
                raise ToolError(f"the tool {self._name} failed to load "
                                f"({type(exc).__name__})") from None
        return self._loaded

    @property
    def definition(self) -> ToolDefinition:
        """From the plugin's own description and parameters."""
        plugin = self._plugin()
        return ToolDefinition(name=self._name, description=str(plugin.description),
                              parameters=dict(plugin.parameters))

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """The plugin's ``run``."""
        return str(await self._plugin().run(dict(arguments), context))
