"""Wiring for ``personae run``: the metrics recorder, the per-reply log lines and,
when ``metrics.port`` is set, the ``/metrics`` + health endpoint.

::

    ops = await start_observability(config, store)   # appends are timed from here on
    model = ops.timed_model(gateway)                 # time to first token is observed
    ...
    await ops.close()                  # before the store closes
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    checks: list[Callable[[], str | None]] = field(default_factory=list)
    """More reasons not to be ready, from the running parts (see :meth:`add_check`)."""
    held_shards: Callable[[], Sequence[int]] | None = None

    def timed_model(self, model: ModelClient) -> TimedModel:
        """``model`` (the gateway) with its replies' time to first token observed."""
        return TimedModel(model, self.metrics)

    def add_check(self, check: Callable[[], str | None]) -> None:
        """``/readyz`` also asks ``check`` (None: fine; else the sentence to show), e.g.
        the Discord adapter's messages waiting for the log to take them."""
        self.checks.append(check)

    def run_shards(self, label: str, process: str, held: Callable[[], Sequence[int]]) -> None:
        """A sharded process: ``label`` (``0-3/8``) and ``process`` (its lease owner name)
        go in ``personae_process``; ``/readyz`` wants every shard it ``held`` connected
        (a standby holding none is ready)."""
        self.metrics.process.labels(label, process).set(1)
        self.held_shards = held

    def readiness(self) -> Readiness:
        """What ``/readyz`` would answer now."""
        found = readiness_of(self.recorder.state, self.store, held=(
            None if self.held_shards is None else self.held_shards()))
        more = tuple(reason for check in self.checks if (reason := check()) is not None)
        return Readiness(found.reasons + more)

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
    # over a log other processes write too, this process's series count its own events
    shared = config.database.url.split("://", 1)[0] in ("postgresql", "postgres")
    recorder = MetricsRecorder(store, metrics, LiveState(), queue_depth=queue_depth,
                               own=shared)
    await recorder.start()
    store.observe_appends(recorder.observe_append)
    observability = Observability(metrics, recorder, store, None)
    settings = config.metrics
    if settings.port is not None:
        server = HealthServer(metrics.registry, observability.readiness,
                              host=settings.host, port=settings.port)
        try:
            await server.start()
        except OSError as exc:
            store.observe_appends(None)
            await recorder.close()
            raise ProblemsError([_port_problem(
                config, f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                "free the port or choose another")]) from None
        observability.server = server
    return observability


def _port_problem(config: Config, message: str) -> Problem:
    try:
        document = load_yaml(config.source.read_text(encoding="utf-8"), str(config.source))
        return document.problem(("metrics", "port"), message)
    except (OSError, UnicodeDecodeError, ProblemsError):
        return Problem(str(config.source), 1, 1, "metrics.port", message)
