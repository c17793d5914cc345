"""What is worth fixing in a valid persona but does not stop it: tools its model will not
be offered (its provider is set not to take tools), HTTP tools whose secret is not set,
images its model will not see. Each warning is located in the persona's file."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..config import ProviderSettings
from ..credentials import Secrets
from ..problems import Problem, ProblemsError
from ..yamldoc import FieldPath, load_yaml
from .model import Persona

_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def persona_warnings(persona: Persona, providers: Mapping[str, ProviderSettings],
                     secrets: Secrets) -> list[Problem]:
    """The warnings about ``persona`` (see the module docstring)."""
    found: list[tuple[FieldPath, str]] = []
    tools = persona.tools.entries
    settings = providers.get(persona.model.provider)
    if tools and settings is not None and not settings.supports_tools(persona.model.name):
        found.append((("tools",), f"provider {settings.name} is set not to take tools for "
                                  f"model {persona.model.name} (providers.{settings.name}.tools "
                                  "in config.yaml): the persona's tools will not be offered"))
    for spec in tools:
        if spec.http is None:
            continue
        for value in spec.http.headers.values():
            for name in _SECRET.findall(value):
                if secrets.get(name) is None:
                    found.append((("tools",), f"the tool {spec.name} needs the environment "
                                              f"variable {name}, which is not set: its calls "
                                              "will fail until it is"))
    return [_located(persona, path, message) for path, message in found]


def _located(persona: Persona, path: FieldPath, message: str) -> Problem:
    file = str(persona.source_path or f"{persona.id}.yaml")
    try:
        return load_yaml(persona.source_text, file).problem(path, message)
    except ProblemsError:
        return Problem(file, 1, 1, ".".join(map(str, path)), message)
