"""The model gateway: one call for a reply, with the failure policy users can live with.

:meth:`ModelGateway.complete` never raises for anything a server does; it returns a
:class:`~core.gateway.model.ModelOutcome`. The policy, per provider:

- retry what can succeed later (429 except ``insufficient_quota``, 408, 409, 5xx,
  connection errors, timeouts, a stream broken before any visible text) with
  exponential backoff and full jitter, or exactly the server's ``Retry-After``;
  never past the request's deadline (a wait that would pass it fails at once);
- ``context_length_exceeded``: drop the oldest half of the history and try once more;
- a stream broken after text was shown ends the reply with what arrived plus a marker;
- a circuit breaker fails fast while the provider keeps failing; a fallback
  provider/model takes over (the primary then gets only part of the deadline);
- concurrency and requests/tokens per minute are bounded per provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from core.config import ProviderSettings
from core.credentials import Secrets

from .backend import Backend, Offer, ToolCallDelta, complete_calls
from .breaker import BreakerState, CircuitBreaker
from .failures import AttemptFailed, Failure
from .limits import ProviderLimits, ThrottleTimeout
from .model import ChatMessage, ModelOutcome, ModelRequest, OnDelta, ToolCall, Usage
from .offline import OFFLINE_PROVIDER, OfflineBackend
from .openai_backend import OpenAIBackend
from .reasoning import ReasoningFilter
from .tokens import TokenCalibration, estimate_tokens

log = logging.getLogger("core.gateway")

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to local servers that have no ``api_key_env``: the SDK insists on some key."""


@dataclass(frozen=True, slots=True)
class GatewayPolicy:
    """The knobs of the failure policy (the defaults suit a chat bot)."""

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    fallback_share: float = 0.5
    """With a fallback, the primary may use this share of the deadline."""
    truncation_marker: str = " […]"

    def backoff(self, retry: int, draw: float) -> float:
        """Full-jitter backoff before retry number ``retry`` (1-based); ``draw`` in [0, 1)."""
        return draw * min(self.backoff_cap_s, self.backoff_base_s * 2 ** (retry - 1))


@dataclass(frozen=True, slots=True)
class _Provider:
    settings: ProviderSettings
    backend: Backend
    breaker: CircuitBreaker
    limits: ProviderLimits


@dataclass(slots=True)
class _Call:
    """What one ``complete`` call has done so far, across attempts and providers."""

    started: float
    on_delta: OnDelta | None
    attempts: int = 0
    waits: list[float] = field(default_factory=list)
    queued_s: float = 0.0
    first_token_at: float | None = None
    shown: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Reply:
    usage: Usage | None
    finish_reason: str | None
    reasoning: str
    messages: tuple[ChatMessage, ...]
    tool_calls: tuple[ToolCall, ...] = ()


class ModelGateway:
    """Calls model providers by name; the built-in ``offline`` provider is always there."""

    def __init__(self, providers: Mapping[str, ProviderSettings], secrets: Secrets, *,
                 policy: GatewayPolicy = GatewayPolicy(),
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 draw: Callable[[], float] = random.random) -> None:
        self._settings = {OFFLINE_PROVIDER: ProviderSettings(OFFLINE_PROVIDER, kind="offline"),
                          **providers}
        self._secrets = secrets
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._draw = draw
        self._providers: dict[str, _Provider] = {}
        self._unusable: dict[str, Failure] = {}
        self._toolless: set[tuple[str, str]] = set()
        self.calibration = TokenCalibration()

    @property
    def provider_names(self) -> frozenset[str]:
        """Every provider a request may name (the configured ones and ``offline``)."""
        return frozenset(self._settings)

    def estimate_prompt_tokens(self, provider: str, model: str,
                               messages: Sequence[ChatMessage]) -> int:
        """A safe estimate of ``messages``' prompt tokens, corrected by this model's usage."""
        return self.calibration.estimate(provider, model, messages,
                                         image_flat=self._image_flat(provider))

    def supports_tools(self, provider: str, model: str) -> bool:
        """Whether ``model`` on ``provider`` may be offered tools (config.yaml's
        ``providers.<name>.tools``; the offline provider takes them)."""
        settings = self._settings.get(provider)
        return settings is not None and settings.supports_tools(model)

    def _image_flat(self, provider: str) -> int | None:
        settings = self._settings.get(provider)
        return settings.image_tokens if settings is not None else None

    def breaker_state(self, provider: str) -> BreakerState:
        """The circuit breaker state of ``provider`` ("closed" before its first call)."""
        known = self._providers.get(provider)
        return known.breaker.state if known else "closed"

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            await provider.backend.aclose()
        self._providers.clear()

    async def complete(self, request: ModelRequest,
                       on_delta: OnDelta | None = None) -> ModelOutcome:
        """A reply to ``request``; failures come back as an outcome, never as an exception."""
        call = _Call(started=self._clock(), on_delta=on_delta)
        deadline = call.started + request.deadline_s
        has_fallback = bool(request.fallback_provider or request.fallback_model)
        primary_deadline = (call.started + request.deadline_s * self._policy.fallback_share
                            if has_fallback else deadline)
        try:
            outcome = await self._complete_with(request.provider, request.model, request,
                                                primary_deadline, call)
            if outcome.ok or not has_fallback:
                return outcome
            provider = request.fallback_provider or request.provider
            model = request.fallback_model or request.model
            log.info("falling back from %s/%s to %s/%s after %s", request.provider,
                     request.model, provider, model, outcome.error_class)
            fallback = await self._complete_with(provider, model, request, deadline, call)
            fallback = replace(fallback, used_fallback=True)
            if fallback.ok:
                return fallback
            return replace(fallback, error=f"{outcome.error}; fallback: {fallback.error}")
        except Exception:
            # A bug of ours or a reply shape nobody anticipated: logged, never raised.
            log.exception("model call failed unexpectedly")
            return self._failed(request.provider, request.model, call,
                                Failure("internal_error", "the model call failed unexpectedly",
                                        retryable=False, provider_fault=False))

    async def _complete_with(self, name: str, model: str, request: ModelRequest,
                             deadline: float, call: _Call) -> ModelOutcome:
        provider = self._provider(name)
        if isinstance(provider, Failure):
            return self._failed(name, model, call, provider)
        messages = request.messages
        shrunk = False
        tries = 0
        last: Failure | None = None
        while True:
            if not provider.breaker.admit():
                return self._failed(name, model, call, last or self._circuit_open(provider))
            tries += 1
            try:
                reply = await self._attempt(provider, model, messages, request, deadline, call)
            except AttemptFailed as exc:
                last = exc.failure
            except BaseException:
                provider.breaker.record_neutral()
                raise
            else:
                provider.breaker.record_success()
                return self._succeeded(name, model, call, reply)
            if last.provider_fault:
                provider.breaker.record_failure(last.error_class)
            else:
                provider.breaker.record_neutral()
            if call.shown:
                return await self._truncated(name, model, messages, call, last)
            if last.error_class == "context_length_exceeded" and not shrunk:
                smaller = shrink_history(messages)
                if smaller is not None:
                    log.info("%s/%s: context too long, retrying with %d of %d messages",
                             name, model, len(smaller), len(messages))
                    messages, shrunk = smaller, True
                    continue
            if not last.retryable or tries >= self._policy.max_attempts:
                return self._failed(name, model, call, last)
            wait = (last.retry_after_s if last.retry_after_s is not None
                    else self._policy.backoff(tries, self._draw()))
            if self._clock() + wait >= deadline:
                return self._failed(name, model, call, replace(
                    last, sentence=f"{last.sentence}; waiting {wait:.3g} s more would pass "
                                   f"the {request.deadline_s:g} s deadline"))
            log.info("%s/%s: %s, retry %d in %.3f s", name, model, last.error_class, tries, wait)
            call.waits.append(wait)
            await self._sleep(wait)

    async def _attempt(self, provider: _Provider, model: str,
                       messages: tuple[ChatMessage, ...], request: ModelRequest,
                       deadline: float, call: _Call) -> _Reply:
        settings = provider.settings
        if deadline - self._clock() <= 0:
            raise AttemptFailed(_deadline_failure(request, provider_fault=False))
        limits = provider.limits
        if limits.requests is not None or limits.tokens is not None:
            estimate = self.calibration.estimate(settings.name, model, messages,
                                                 image_flat=settings.image_tokens)
            try:
                call.queued_s += await limits.admit(estimate, deadline)
            except ThrottleTimeout:
                raise AttemptFailed(Failure(
                    "throttled", f"the rate limits configured for {settings.name} would make "
                                 "the reply miss its deadline",
                    retryable=False, provider_fault=False)) from None
        reasoning = ReasoningFilter(show=request.show_reasoning)
        usage: Usage | None = None
        finish: str | None = None
        calls: list[ToolCallDelta] = []
        offer = Offer()
        if request.tools and settings.supports_tools(model):
            offer = Offer(tools=request.tools, choice=request.tool_choice)
        elif request.tools and (settings.name, model) not in self._toolless:
            self._toolless.add((settings.name, model))
            log.info("%s/%s is set not to take tools: none are offered to it", settings.name,
                     model)
        try:
            async with asyncio.timeout(deadline - self._clock()):
                queued_from = self._clock()
                async with limits.slots:
                    call.queued_s += self._clock() - queued_from
                    call.attempts += 1
                    timeout_s = min(settings.timeout_s, deadline - self._clock())
                    pieces = provider.backend.pieces(model, messages, request.params,
                                                     stream=request.stream, timeout_s=timeout_s,
                                                     offer=offer)
                    async with contextlib.aclosing(pieces):
                        async for piece in pieces:
                            if piece.reasoning:
                                await self._show(call, reasoning.reasoning_field(piece.reasoning))
                            if piece.content:
                                await self._show(call, reasoning.content(piece.content))
                            if piece.usage is not None:
                                usage = piece.usage
                            if piece.finish_reason is not None:
                                finish = piece.finish_reason
                            calls.extend(piece.tool_calls)
                    await self._show(call, reasoning.finish())
        except TimeoutError:
            raise AttemptFailed(_deadline_failure(request, provider_fault=True)) from None
        # a model that was not offered tools cannot call them, whatever it sends
        tool_calls = complete_calls(calls) if offer.tools and offer.choice != "none" else ()
        return _Reply(usage, finish, reasoning.reasoning, messages, tool_calls)

    async def _show(self, call: _Call, text: str) -> None:
        if not text:
            return
        if call.first_token_at is None:
            call.first_token_at = self._clock()
        call.shown.append(text)
        if call.on_delta is not None:
            await call.on_delta(text)

    def _succeeded(self, name: str, model: str, call: _Call, reply: _Reply) -> ModelOutcome:
        text = "".join(call.shown)
        usage = reply.usage
        provider = self._providers[name]
        flat = provider.settings.image_tokens
        if usage is not None and not usage.estimated and usage.prompt_tokens:
            self.calibration.observe(name, model, reply.messages, usage.prompt_tokens,
                                     image_flat=flat)
        if usage is None:
            prompt = self.calibration.estimate(name, model, reply.messages, image_flat=flat)
            completion = estimate_tokens(text) + estimate_tokens(reply.reasoning)
            usage = Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                estimated=True,
            )
        if provider.limits.tokens is not None:
            provider.limits.tokens.charge(usage.completion_tokens)
        return ModelOutcome(
            ok=True, text=text, provider=name, model=model, usage=usage,
            latency_s=self._clock() - call.started,
            time_to_first_token_s=self._first_token(call), attempts=call.attempts,
            waits_s=tuple(call.waits), finish_reason=reply.finish_reason,
            reasoning=reply.reasoning, queued_s=call.queued_s, tool_calls=reply.tool_calls,
        )

    async def _truncated(self, name: str, model: str, messages: Sequence[ChatMessage],
                         call: _Call, failure: Failure) -> ModelOutcome:
        arrived = "".join(call.shown)
        await self._show(call, self._policy.truncation_marker)
        prompt = self.calibration.estimate(name, model, messages,
                                           image_flat=self._image_flat(name))
        completion = estimate_tokens(arrived)
        return ModelOutcome(
            ok=True,
            text="".join(call.shown),
            provider=name,
            model=model,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                estimated=True,
            ),
            latency_s=self._clock() - call.started,
            time_to_first_token_s=self._first_token(call),
            attempts=call.attempts,
            waits_s=tuple(call.waits),
            truncated=True,
            finish_reason="truncated",
            error_class=failure.error_class,
            error=failure.sentence,
            queued_s=call.queued_s,
        )

    def _failed(self, name: str, model: str, call: _Call, failure: Failure) -> ModelOutcome:
        log.warning("%s/%s failed: %s (%s)", name, model, failure.error_class, failure.sentence)
        return ModelOutcome(
            ok=False, text="", provider=name, model=model,
            latency_s=self._clock() - call.started, attempts=call.attempts,
            waits_s=tuple(call.waits), error_class=failure.error_class, error=failure.sentence,
            queued_s=call.queued_s,
        )

    def _first_token(self, call: _Call) -> float | None:
        return None if call.first_token_at is None else call.first_token_at - call.started

    def _circuit_open(self, provider: _Provider) -> Failure:
        breaker = provider.breaker
        cause = f" (last: {breaker.last_failure})" if breaker.last_failure else ""
        return Failure("circuit_open",
                       f"{provider.settings.name} keeps failing{cause}; calls paused for "
                       f"{breaker.retry_in():.0f} s more",
                       retryable=False, provider_fault=False)

    def _provider(self, name: str) -> _Provider | Failure:
        known = self._providers.get(name) or self._unusable.get(name)
        if known is not None:
            return known
        settings = self._settings.get(name)
        if settings is None:
            return Failure("unknown_provider",
                           f"no provider named {name!r} in config.yaml (known: "
                           f"{', '.join(sorted(self._settings))})",
                           retryable=False, provider_fault=False)
        backend: Backend
        if settings.kind == "offline":
            backend = OfflineBackend()
        else:
            key_env = settings.key_env
            key = self._secrets.get(key_env) if key_env else PLACEHOLDER_API_KEY
            if key is None:
                missing = Failure(
                    "missing_credentials",
                    f"provider {name} needs an API key: set the environment variable "
                    f"{key_env} (or put {key_env}=... in a .env file next to config.yaml)",
                    retryable=False, provider_fault=False)
                self._unusable[name] = missing
                return missing
            backend = OpenAIBackend(settings, key)
        provider = _Provider(
            settings=settings, backend=backend,
            breaker=CircuitBreaker(failure_threshold=self._policy.breaker_failures,
                                   cooldown_s=self._policy.breaker_cooldown_s,
                                   clock=self._clock),
            limits=ProviderLimits(max_concurrency=settings.max_concurrency,
                                  requests_per_minute=settings.requests_per_minute,
                                  tokens_per_minute=settings.tokens_per_minute,
                                  clock=self._clock, sleep=self._sleep),
        )
        self._providers[name] = provider
        return provider


def shrink_history(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...] | None:
    """The prompt without the oldest half of its non-system history; None if nothing can go.

    System messages, the last user message and what follows it (the tool calls and
    results of this reply, which must stay together) always stay, in their places.
    """
    last_user = next((i for i in range(len(messages) - 1, -1, -1)
                      if messages[i].role == "user"), None)
    end = last_user if last_user is not None else len(messages)
    droppable = [i for i, m in enumerate(messages[:end]) if m.role != "system"]
    if not droppable:
        return None
    history = sum(1 for m in messages if m.role != "system")
    dropped = set(droppable[:max(1, history // 2)])
    return tuple(m for i, m in enumerate(messages) if i not in dropped)


def _deadline_failure(request: ModelRequest, *, provider_fault: bool) -> Failure:
    return Failure("timeout", f"no reply within the {request.deadline_s:g} s deadline",
                   retryable=False, provider_fault=provider_fault)
