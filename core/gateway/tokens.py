"""Token estimates for budgeting a prompt before it is sent.

The server's reported usage is the truth; these estimates only have to be fast,
offline and rarely low. They count characters (about four ASCII characters per
token for GPT-style BPE tokenizers), the extra UTF-8 bytes of non-ASCII text
(non-Latin scripts take about a token per one to three characters) and emoji and
other astral characters (two to four tokens each), then add a safety margin.
Measured against cl100k_base and o200k_base (``bench/gateway.py --tokens``) the
estimate is 1.1-1.6x the real count for prose, code and non-Latin scripts.
:class:`TokenCalibration` corrects it per provider and model from the usage
servers report, since local models use other tokenizers.

Images cost what OpenAI publishes for its vision models (:func:`image_tokens`: 85
tokens at ``low`` detail, else 85 plus 170 per 512-pixel tile of the image scaled
to fit 2048x2048 with its shorter side at most 768), or a flat cost per image that a
provider is configured with (local vision models count differently).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .model import ChatMessage, ImagePart

SAFETY_MARGIN = 1.10
"""Estimates are raised by this factor so that budgets err on the safe side."""

_CHARS_PER_TOKEN = 4.0
_TOKENS_PER_EXTRA_BYTE = 0.45
_TOKENS_PER_ASTRAL_CHAR = 1.5
_MESSAGE_OVERHEAD = 4   # role and separators, per message (OpenAI's chat format)
_REPLY_PRIMING = 3      # the tokens that start the assistant's reply
_ROUNDING_SLACK = 1e-9  # so that 100 * 1.1 rounds up to 110, not 111

IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
UNKNOWN_IMAGE_TOKENS = IMAGE_BASE_TOKENS + 6 * IMAGE_TILE_TOKENS
"""An image whose size is unknown is costed as a large one (1536x1024: six tiles)."""


def _raw_tokens(text: str) -> float:
    if text.isascii():
        return len(text) / _CHARS_PER_TOKEN
    chars = len(text)
    extra_bytes = len(text.encode("utf-8", "surrogatepass")) - chars
    astral = len(text.encode("utf-16-le", "surrogatepass")) // 2 - chars
    return (chars / _CHARS_PER_TOKEN + extra_bytes * _TOKENS_PER_EXTRA_BYTE
            + astral * _TOKENS_PER_ASTRAL_CHAR)


def _with_margin(raw: float) -> int:
    return math.ceil(raw * SAFETY_MARGIN - _ROUNDING_SLACK)


def estimate_tokens(text: str) -> int:
    """A safe (rarely low) estimate of the tokens in ``text``."""
    if not text:
        return 0
    return _with_margin(_raw_tokens(text))


def image_tokens(width: int | None, height: int | None, detail: str = "auto",
                 flat: int | None = None) -> int:
    """The tokens one image costs: ``flat`` when a provider sets one, else OpenAI's
    published tile formula (see the module docstring)."""
    if flat is not None:
        return flat
    if detail == "low":
        return IMAGE_BASE_TOKENS
    if not width or not height or width <= 0 or height <= 0:
        return UNKNOWN_IMAGE_TOKENS
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def _image_cost(part: ImagePart, flat: int | None) -> int:
    return image_tokens(part.width, part.height, part.detail, flat)


def images_tokens(message: ChatMessage, flat: int | None = None) -> int:
    """The tokens the images of ``message`` cost (0 for a text message)."""
    return sum(_image_cost(part, flat) for part in message.images)


def _raw_message_tokens(message: ChatMessage, image_flat: int | None) -> float:
    total = _MESSAGE_OVERHEAD + _raw_tokens(message.text)
    if not isinstance(message.content, str):
        total += images_tokens(message, image_flat)
    if message.name:
        total += 1 + _raw_tokens(message.name)
    for call in message.tool_calls:
        total += _MESSAGE_OVERHEAD + _raw_tokens(call.name) + _raw_tokens(call.arguments)
    return total


def _raw_messages_tokens(messages: Sequence[ChatMessage], image_flat: int | None = None
                         ) -> float:
    total = float(_REPLY_PRIMING)
    for message in messages:
        total += _raw_message_tokens(message, image_flat)
    return total


def estimate_messages_tokens(messages: Sequence[ChatMessage], *,
                             image_flat: int | None = None) -> int:
    """A safe estimate of the prompt tokens ``messages`` will cost, chat overhead and
    images included (``image_flat``: a provider's flat cost per image)."""
    return _with_margin(_raw_messages_tokens(messages, image_flat))


class TokenCalibration:
    """Per provider and model, how the server's prompt counts compare with the raw estimate.

    The ratio starts at 1 and follows reported usage as an exponential moving average,
    clamped to a sane range so one odd report cannot wreck budgets.
    """

    _WEIGHT = 0.2
    _BOUNDS = (0.25, 4.0)

    def __init__(self) -> None:
        self._ratios: dict[tuple[str, str], float] = {}

    def ratio(self, provider: str, model: str) -> float:
        """The current correction factor for ``provider``/``model`` (1.0 before any usage)."""
        return self._ratios.get((provider, model), 1.0)

    def estimate(self, provider: str, model: str, messages: Sequence[ChatMessage], *,
                 image_flat: int | None = None) -> int:
        """A safe estimate of the prompt tokens, corrected by what this model reported so far."""
        return _with_margin(_raw_messages_tokens(messages, image_flat)
                            * self.ratio(provider, model))

    def observe(self, provider: str, model: str, messages: Sequence[ChatMessage],
                reported_prompt_tokens: int, *, image_flat: int | None = None) -> None:
        """Learn from the prompt token count a server reported for ``messages``."""
        raw = _raw_messages_tokens(messages, image_flat)
        if raw <= 0 or reported_prompt_tokens <= 0:
            return
        low, high = self._BOUNDS
        sample = min(high, max(low, reported_prompt_tokens / raw))
        key = (provider, model)
        current = self._ratios.get(key)
        self._ratios[key] = sample if current is None else (
            current + self._WEIGHT * (sample - current)
        )
