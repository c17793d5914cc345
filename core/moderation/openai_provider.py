"""OpenAI's moderation endpoint (``/v1/moderations``), or a compatible server's, through
the official SDK's ``client.moderations.create``, with its retries off: a check has one
attempt within the moderator's deadline, and a failure is the policy's to judge."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import openai
from openai import AsyncOpenAI

from ..config import ProviderSettings
from .moderator import ModerationUnavailable

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIModeration:
    """Scores texts with one provider's moderation model."""

    def __init__(self, settings: ProviderSettings, api_key: str, model: str) -> None:
        self.name = f"{settings.name}:{model}"
        self._model = model
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=settings.base_url or OPENAI_BASE_URL, max_retries=0,
            default_headers=dict(settings.headers) or None,
            default_query=dict(settings.extra_query) or None)

    async def scores(self, text: str, timeout_s: float) -> Mapping[str, float]:
        """Each category's score for ``text`` (see :class:`~.moderator.ModerationProvider`)."""
        try:
            response = await self._client.moderations.create(
                input=text, model=self._model, timeout=timeout_s)
        except openai.APITimeoutError:
            raise ModerationUnavailable("timeout") from None
        except openai.APIStatusError as exc:
            raise ModerationUnavailable(f"http_{exc.status_code}") from None
        except openai.APIConnectionError:
            raise ModerationUnavailable("connection") from None
        except (openai.OpenAIError, ValueError, TypeError):
            # "from None": the SDK's message may quote the server's body
            raise ModerationUnavailable("garbage") from None
        return _scores(response)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.close()


def _scores(response: Any) -> dict[str, float]:
    """The category scores of the first result, each a number in 0..1; anything else
    is an answer that is no moderation result."""
    try:
        raw = response.results[0].category_scores.model_dump(by_alias=True)
    except (AttributeError, IndexError, TypeError, KeyError):
        raise ModerationUnavailable("garbage") from None
    scores: dict[str, float] = {}
    for category, value in raw.items():
        if value is None:  # a category this model does not score
            continue
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value) or not 0.0 <= value <= 1.0):
            raise ModerationUnavailable("garbage")
        scores[str(category)] = float(value)
    if not scores:
        raise ModerationUnavailable("garbage")
    return scores
