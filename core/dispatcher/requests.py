"""The model request a persona's reply is asked with: the one place that maps a persona's
model settings to a :class:`~core.gateway.model.ModelRequest`, shared by the dispatcher
and by ``personae explain`` / ``personae rerun`` so they show and send exactly the same."""

from __future__ import annotations

from typing import Any

from ..gateway.model import ChatMessage, ModelRequest, ToolDefinition
from ..personas.model import Persona

_SAMPLING_FIELDS = ("temperature", "max_tokens", "top_p", "frequency_penalty",
                    "presence_penalty", "seed")


def sampling_params(persona: Persona) -> dict[str, Any]:
    """The persona's sampling parameters as they are sent (unset ones left out)."""
    spec = persona.model
    params: dict[str, Any] = dict(spec.extra)
    for name in _SAMPLING_FIELDS:
        value = getattr(spec, name)
        if value is not None:
            params[name] = value
    if spec.stop:
        params["stop"] = list(spec.stop)
    return params


def model_request(persona: Persona, messages: tuple[ChatMessage, ...],
                  provider: str | None = None,
                  tools: tuple[ToolDefinition, ...] = ()) -> ModelRequest:
    """The request for ``persona`` (its model, sampling parameters, deadline and fallback,
    the ``tools`` it may call); ``provider`` sends it to another provider instead,
    without a fallback."""
    spec = persona.model
    fallback = None if provider else spec.fallback
    return ModelRequest(
        provider=provider or spec.provider, model=spec.name, messages=messages,
        params=sampling_params(persona), deadline_s=persona.limits.reply_deadline_s,
        fallback_provider=fallback.provider if fallback else None,
        fallback_model=fallback.name if fallback else None, tools=tools,
    )
