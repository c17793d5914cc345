"""Gateway connects, resumes and disconnects as events in the log (stream ``gateway``).

Uptime and reconnect rates are computed from these: a ``GatewayConnected`` starts
a session (after IDENTIFY, with its session id), ``GatewayResumed`` continues one,
``GatewayDisconnected`` marks the connection lost (or closed at shutdown).
"""

from __future__ import annotations

import logging
import time

from eventstore import EventStore, LogUnavailable, RecordedEvent

from ...events import GatewayConnected, GatewayDisconnected, GatewayResumed, typed
from ...events.ids import GATEWAY_STREAM, gateway_event_id
from ...events.operations import GatewayChange

log = logging.getLogger(__name__)



class GatewayLog:
    """Appends gateway life-cycle events; failures are logged, never raised (a full disk
    must not take the connection down with it)."""

    def __init__(self, store: EventStore, *, platform: str = "discord") -> None:
        self._store = store
        self._platform = platform

    async def connected(self, session_id: str | None, shard_id: int | None = None) -> None:
        """A new gateway session (READY)."""
        await self._record(GatewayConnected, session_id, shard_id)

    async def resumed(self, session_id: str | None, shard_id: int | None = None) -> None:
        """A session resumed after a dropped connection (RESUMED)."""
        await self._record(GatewayResumed, session_id, shard_id)

    async def disconnected(self, session_id: str | None, shard_id: int | None = None) -> None:
        """The connection was lost or closed."""
        await self._record(GatewayDisconnected, session_id, shard_id)

    async def _record(self, kind: type[GatewayChange], session_id: str | None,
                      shard_id: int | None) -> None:
        event = kind(platform=self._platform, session_id=session_id, shard_id=shard_id,
                     at=time.time())
        try:
            await self._store.append(GATEWAY_STREAM, event.new_event(gateway_event_id()))
        except LogUnavailable as exc:  # a full disk: /readyz says so already
            log.warning("could not record %s in the log: %s", kind.type, exc)
        except Exception:
            log.warning("could not record %s in the log", kind.type, exc_info=True)


def uptime_s(events: list[RecordedEvent], now: float) -> float:
    """Seconds connected, from the gateway stream's events (oldest first)."""
    total = 0.0
    since: float | None = None
    for item in typed(events, (GatewayConnected, GatewayResumed, GatewayDisconnected)):
        assert isinstance(item.event, GatewayChange)
        at = item.event.at
        if isinstance(item.event, GatewayConnected | GatewayResumed):
            since = at if since is None else since
        elif isinstance(item.event, GatewayDisconnected) and since is not None:
            total += at - since
            since = None
    return total + (now - since if since is not None else 0.0)
