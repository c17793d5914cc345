"""/healthz and /readyz through their states: not connected, connected, log not
writable, writable again, disconnected; and a port that is taken."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.adapters.discord.gateway_log import GatewayLog
from core.ops.observability import start_observability
from core.problems import ProblemsError
from eventstore import NewEvent

from .bot import http_get, open_store, ops_config
from .conftest import read_only


async def test_readiness_follows_the_gateway_and_the_log(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    store = await open_store(folder / "log.db")
    ops = await start_observability(ops_config(folder), store, registry=CollectorRegistry())
    gateway = GatewayLog(ops.store)  # type: ignore[arg-type]
    url = ops.server.url
    try:
        assert await http_get(f"{url}/healthz") == (200, "ok\n")
        assert await http_get(f"{url}/readyz") == (503, "the Discord gateway is not connected\n")

        await gateway.connected("session-1")
        await ops.recorder.wait_for(await store.last_position())
        assert await http_get(f"{url}/readyz") == (200, "ready\n")

        with read_only(folder):
            status, body = await http_get(f"{url}/readyz")
            assert status == 503
            assert body == f"the event log's directory {folder} is not writable\n"
            assert (await http_get(f"{url}/healthz"))[0] == 200
        assert (await http_get(f"{url}/readyz"))[0] == 200

        await gateway.disconnected("session-1")
        await ops.recorder.wait_for(await store.last_position())
        assert await http_get(f"{url}/readyz") == (503, "the Discord gateway is not connected\n")
        await gateway.resumed("session-1")
        await ops.recorder.wait_for(await store.last_position())
        assert (await http_get(f"{url}/readyz"))[0] == 200
        status, metrics = await http_get(f"{url}/metrics")
        assert 'personae_gateway_reconnects_total{kind="resume"} 1.0' in metrics
    finally:
        await ops.close()
        await store.close()


async def test_a_failed_commit_makes_the_bot_unready_until_an_append_succeeds(
        tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db")
    ops = await start_observability(ops_config(tmp_path), store, registry=CollectorRegistry())
    try:
        await GatewayLog(ops.store).connected("s")  # type: ignore[arg-type]
        await ops.recorder.wait_for(await store.last_position())
        assert ops.readiness().ready
        # The writer's own connection refuses writes: the next commit fails for real.
        store._log.connection.execute("PRAGMA query_only=ON")
        with pytest.raises(Exception, match="could not commit"):
            await ops.store.append("s", _event("e1"))
        assert ops.readiness().reasons[0].startswith("the last append failed")
        _, metrics = await http_get(f"{ops.server.url}/metrics")
        assert "personae_eventlog_append_errors_total 1.0" in metrics
        store._log.connection.execute("PRAGMA query_only=OFF")
        await ops.store.append("s", _event("e2"))
        assert ops.readiness().ready
    finally:
        await ops.close()
        await store.close()


def _event(event_id: str) -> NewEvent:
    return NewEvent("Thing", {"n": 1}, event_id=event_id)


async def test_a_taken_port_is_one_sentence_about_metrics_port(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("metrics:\n  port: 9\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = await open_store(tmp_path / "log.db")
        try:
            with pytest.raises(ProblemsError) as raised:
                await start_observability(ops_config(tmp_path, port), store)
        finally:
            await store.close()
    (problem,) = raised.value.problems
    assert problem.field == "metrics.port" and problem.line == 2
    assert f"cannot listen on 127.0.0.1:{port}" in problem.message


async def test_without_a_port_there_is_no_server_but_the_recorder_runs(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db")
    ops = await start_observability(ops_config(tmp_path, None), store)
    try:
        assert ops.server is None
        await GatewayLog(ops.store).connected("s")  # type: ignore[arg-type]
        await ops.recorder.wait_for(await store.last_position())
        assert ops.readiness().ready
    finally:
        await ops.close()
        await store.close()
