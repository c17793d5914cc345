"""The operations endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves HTTP at all. ``/readyz`` answers
200 only when the bot can do its job (the Discord gateway is connected and the
event log is writable), else 503 with the reasons, one a line, so that a load
balancer, systemd watchdog script or person can tell what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from eventstore import EventStore, sqlite_path

from .metrics import LiveState


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the bot is ready, and if not, why (one sentence per reason)."""

    reasons: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """True when nothing stands in the way."""
        return not self.reasons


def log_writable(path: Path) -> str | None:
    """Why the event log at ``path`` cannot be written now, or None when it can.

    access(2) answers for this process's rights and for read-only mounts alike.
    """
    if not os.access(path.parent, os.W_OK):
        return f"the event log's directory {path.parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the event log {path} is not writable"
    return None


def readiness_of(state: LiveState, store: EventStore, *,
                 held: Sequence[int] | None = None) -> Readiness:
    """Readiness from what the metrics recorder knows and the log's state (a file not
    writable, a server not answering); ``held``: the
    shards a sharded process runs now (each must be connected)."""
    reasons = []
    if held is None and not state.gateway_connected:
        reasons.append("the Discord gateway is not connected")
    down = [shard for shard in held or () if not state.shards.get(shard)]
    if down:
        reasons.append(f"Discord shard(s) {', '.join(map(str, down))} not connected")
    path = sqlite_path(store.location)
    unwritable = log_writable(path) if path is not None else store.problem()
    if unwritable is not None:
        reasons.append(unwritable)
    elif state.last_append_error is not None:
        reasons.append(f"the last append failed: {state.last_append_error}")
    return Readiness(tuple(reasons))


class HealthServer:
    """An aiohttp server for ``/metrics``, ``/healthz`` and ``/readyz``."""

    def __init__(self, registry: CollectorRegistry, readiness: Callable[[], Readiness], *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._registry = registry
        self._readiness = readiness
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL it listens on (the real port once started)."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Bind and serve. An OSError (port taken) is the caller's to report."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        readiness = self._readiness()
        if readiness.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="".join(f"{r}\n" for r in readiness.reasons))
