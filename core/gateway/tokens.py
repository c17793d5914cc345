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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .model import ChatMessage

SAFETY_MARGIN = 1.10
"""Estimates are raised by this factor so that budgets err on the safe side."""

_CHARS_PER_TOKEN = 4.0
_TOKENS_PER_EXTRA_BYTE = 0.45
_TOKENS_PER_ASTRAL_CHAR = 1.5
_MESSAGE_OVERHEAD = 4   # role and separators, per message (OpenAI's chat format)
_REPLY_PRIMING = 3      # the tokens that start the assistant's reply
_ROUNDING_SLACK = 1e-9  # so that 100 * 1.1 rounds up to 110, not 111


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


def _raw_messages_tokens(messages: Sequence[ChatMessage]) -> float:
    total = float(_REPLY_PRIMING)
    for message in messages:
        total += _MESSAGE_OVERHEAD + _raw_tokens(message.content)
        if message.name:
            total += 1 + _raw_tokens(message.name)
    return total


def estimate_messages_tokens(messages: Sequence[ChatMessage]) -> int:
    """A safe estimate of the prompt tokens ``messages`` will cost, chat overhead included."""
    return _with_margin(_raw_messages_tokens(messages))


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

    def estimate(self, provider: str, model: str, messages: Sequence[ChatMessage]) -> int:
        """A safe estimate of the prompt tokens, corrected by what this model reported so far."""
        return _with_margin(_raw_messages_tokens(messages) * self.ratio(provider, model))

    def observe(self, provider: str, model: str, messages: Sequence[ChatMessage],
                reported_prompt_tokens: int) -> None:
        """Learn from the prompt token count a server reported for ``messages``."""
        raw = _raw_messages_tokens(messages)
        if raw <= 0 or reported_prompt_tokens <= 0:
            return
        low, high = self._BOUNDS
        sample = min(high, max(low, reported_prompt_tokens / raw))
        key = (provider, model)
        current = self._ratios.get(key)
        self._ratios[key] = sample if current is None else (
            current + self._WEIGHT * (sample - current)
        )
