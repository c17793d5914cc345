"""What went wrong in one attempt, in words that are safe to log and show.

The SDK's exception messages may carry the server's raw error body, which can
echo the API key; nothing here ever copies them. :func:`classify` maps an
exception to a :class:`Failure`: a stable class name, a safe sentence, whether a
retry can help, and whether it counts against the provider's circuit breaker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
import openai

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt.

    ``provider_fault``: the provider is unhealthy or unusable (counts towards opening
    its breaker), as opposed to a problem with this one request.
    """

    error_class: str
    sentence: str
    retryable: bool
    provider_fault: bool
    retry_after_s: float | None = None
    status: int | None = None


class AttemptFailed(Exception):
    """Raised by a backend for a failed attempt; carries the classified :class:`Failure`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.sentence)
        self.failure = failure


def parse_retry_after(headers: object, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _safe_code(code: object) -> str | None:
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else None


def classify(exc: BaseException, *, provider: str, model: str, timeout_s: float,
             key_env: str | None) -> Failure:
    """The :class:`Failure` for an exception raised while calling ``provider``."""
    if isinstance(exc, openai.APIConnectionError | TimeoutError):
        if _is_timeout(exc):
            return Failure("timeout", f"{provider} did not answer within {timeout_s:g} s",
                           retryable=True, provider_fault=True)
        return Failure("connection_error", f"the connection to {provider} failed",
                       retryable=True, provider_fault=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, provider=provider, model=model, key_env=key_env)
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("bad_response", f"{provider} sent a reply the client could not read",
                       retryable=False, provider_fault=True)
    if isinstance(exc, openai.APIError):
        return Failure("stream_error", f"{provider} reported an error in the middle of the reply",
                       retryable=True, provider_fault=True)
    return Failure("bad_response", f"{provider} sent a reply the client could not read",
                   retryable=False, provider_fault=True)


def _is_timeout(exc: BaseException) -> bool:
    """Whether a connection-level failure is a timeout, judged by its root causes.

    The SDK's aiohttp transport maps every ``aiohttp.ClientConnectionError`` (a refused
    connection, a dropped one) to a connect *timeout*, so the SDK's own exception
    type cannot be trusted: what the transport really saw is further down the chain.
    """
    chain = tuple(_chain(exc))
    if any(isinstance(link, TimeoutError) for link in chain):
        return True
    if any(isinstance(link, OSError | aiohttp.ClientConnectionError) for link in chain):
        return False
    return isinstance(exc, openai.APITimeoutError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _status_failure(exc: openai.APIStatusError, *, provider: str, model: str,
                    key_env: str | None) -> Failure:
    status = exc.status_code
    code = _safe_code(exc.code) or _safe_code(getattr(exc, "type", None))
    where = f"{provider} answered HTTP {status}"
    if status == 429 and code == "insufficient_quota":
        return Failure("insufficient_quota", f"{where}: the account has no quota left",
                       retryable=False, provider_fault=True, status=status)
    if status == 429:
        return Failure("rate_limited", f"{where}: rate limited", retryable=True,
                       provider_fault=True, status=status,
                       retry_after_s=parse_retry_after(exc.response.headers))
    if status in (408, 409) or status >= 500:
        error_class = "timeout" if status == 408 else "server_error"
        return Failure(error_class, f"{where}", retryable=True, provider_fault=True,
                       status=status, retry_after_s=parse_retry_after(exc.response.headers))
    if code == "context_length_exceeded":
        return Failure("context_length_exceeded",
                       f"{where}: the conversation is too long for {model}",
                       retryable=False, provider_fault=False, status=status)
    if status in (401, 403):
        hint = f" (check {key_env})" if key_env else ""
        return Failure("authentication", f"{where}: the API key was refused{hint}",
                       retryable=False, provider_fault=True, status=status)
    if status == 404:
        return Failure("not_found", f"{where}: no model named {model!r} there",
                       retryable=False, provider_fault=False, status=status)
    detail = f" ({code})" if code else ""
    return Failure("bad_request", f"{where}: the request was refused{detail}",
                   retryable=False, provider_fault=False, status=status)
