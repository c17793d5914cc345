"""Wiring for ``personae run``: the metrics recorder, the per-reply log lines and,
when ``metrics.port`` is set, the ``/metrics`` + health endpoint.

::

    ops = await start_observability(config, store)   # appends are timed from here on
    model = ops.timed_model(gateway)                 # time to first token is observed
    ...
    await ops.close()                  # before the store closes
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from eventstore import EventStore

from ..config import Config
from ..gateway.model import ModelClient
from ..problems import Problem, ProblemsError
from ..yamldoc import load_yaml
from .health import HealthServer, Readiness, readiness_of
from .metrics import LiveState, Metrics, MetricsRecorder, TimedModel


@dataclass
class Observability:
    """The running parts, observing :attr:`store`."""

    metrics: Metrics
    recorder: MetricsRecorder
    store: EventStore
    server: HealthServer | None

    def timed_model(self, model: ModelClient) -> TimedModel:
        """``model`` (the gateway) with its replies' time to first token observed."""
        return TimedModel(model, self.metrics)

    def readiness(self) -> Readiness:
        """What ``/readyz`` would answer now."""
        return readiness_of(self.recorder.state, self.store)

    async def close(self) -> None:
        """Stop serving, following and timing (call before closing the store)."""
        self.store.observe_appends(None)
        if self.server is not None:
            await self.server.close()
        await self.recorder.close()


async def start_observability(
    config: Config,
    store: EventStore,
    *,
    registry: CollectorRegistry | None = None,
    queue_depth: Callable[[], int] | None = None,
) -> Observability:
    """Start the recorder (always: it writes the per-reply log lines) and, when
    ``metrics.port`` is set, the endpoint on ``metrics.host:metrics.port`` (a port
    that cannot be bound is a :class:`~core.problems.ProblemsError` about that setting).

    ``queue_depth``, when given, is read at each scrape instead of the depth derived
    from the log (accepted replies without a final outcome). ``registry`` defaults to
    a fresh one: never the process-global registry.
    """
    metrics = Metrics(registry or CollectorRegistry())
    recorder = MetricsRecorder(store, metrics, LiveState(), queue_depth=queue_depth)
    await recorder.start()
    store.observe_appends(recorder.observe_append)
    server = None
    settings = config.metrics
    if settings.port is not None:
        server = HealthServer(metrics.registry,
                              lambda: readiness_of(recorder.state, store),
                              host=settings.host, port=settings.port)
        try:
            await server.start()
        except OSError as exc:
            store.observe_appends(None)
            await recorder.close()
            raise ProblemsError([_port_problem(
                config, f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                "free the port or choose another")]) from None
    return Observability(metrics, recorder, store, server)


def _port_problem(config: Config, message: str) -> Problem:
    try:
        document = load_yaml(config.source.read_text(encoding="utf-8"), str(config.source))
        return document.problem(("metrics", "port"), message)
    except (OSError, UnicodeDecodeError, ProblemsError):
        return Problem(str(config.source), 1, 1, "metrics.port", message)
