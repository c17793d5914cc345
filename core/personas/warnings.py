"""What is worth fixing in a valid persona but does not stop it: tools its model will not
be offered (its provider is set not to take tools), HTTP tools whose secret is not set,
images its model will not see, an ``nsfw`` persona that asks for DMs the operator does
not allow it, moderation overrides with moderation off (or alerts with no channel).
Each warning is located in the persona's file."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..config import ModerationSettings, ProviderSettings
from ..credentials import Secrets
from ..problems import Problem, ProblemsError
from ..yamldoc import FieldPath, load_yaml
from .model import Persona

_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def persona_warnings(persona: Persona, providers: Mapping[str, ProviderSettings],
                     secrets: Secrets, *, allow_nsfw_dms: bool = False,
                     moderation: ModerationSettings | None = None) -> list[Problem]:
    """The warnings about ``persona`` (see the module docstring); ``allow_nsfw_dms`` and
    ``moderation`` are config.yaml's ``dms.allow_nsfw`` and ``moderation``."""
    moderation = moderation or ModerationSettings()
    found: list[tuple[FieldPath, str]] = []
    written = _written(persona)
    triggers = written.get("triggers")
    if persona.nsfw and not allow_nsfw_dms and isinstance(triggers, dict) \
            and triggers.get("dm") is True:
        found.append((("triggers", "dm"), "the persona is nsfw and config.yaml does not allow "
                                          "nsfw personas in DMs (dms.allow_nsfw): its DMs are "
                                          "refused; set dms.allow_nsfw: true, or dm: false"))
    if "moderation" in written and not moderation.enabled:
        found.append((("moderation",), "moderation is not enabled in config.yaml (a "
                                       "moderation: section there): these settings have no "
                                       "effect"))
    alerts = any("alert" in actions for actions in persona.moderation.actions.values())
    if moderation.enabled and alerts and moderation.alert_channel is None:
        found.append((("moderation", "actions"), "an alert action needs "
                                                 "moderation.alert_channel in config.yaml: "
                                                 "no alert will be posted"))
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


def _written(persona: Persona) -> dict:
    """What the persona's own file says (not the defaults merged under it)."""
    try:
        data = load_yaml(persona.source_text, str(persona.source_path or persona.id)).data
    except ProblemsError:
        return {}
    return data if isinstance(data, dict) else {}


def _located(persona: Persona, path: FieldPath, message: str) -> Problem:
    file = str(persona.source_path or f"{persona.id}.yaml")
    try:
        return load_yaml(persona.source_text, file).problem(path, message)
    except ProblemsError:
        return Problem(file, 1, 1, ".".join(map(str, path)), message)
