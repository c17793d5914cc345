"""Moderation decisions in the metrics: counted by persona, direction and verdict, and
provider failures by error, from the events the log holds."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

import eventstore
from core.events import ModelFailed, ModerationChecked
from core.ops.metrics import Metrics, MetricsRecorder

from .test_metrics import samples, total


async def test_moderation_decisions_and_provider_failures_are_counted(tmp_path: Path) -> None:
    store = await eventstore.open_store(tmp_path / "log.db", synchronous="normal")
    metrics = Metrics(CollectorRegistry())
    recorder = MetricsRecorder(store, metrics)
    decisions = [("m1", "in", "block", None), ("m1", "out", "pass", None),
                 ("m2", "in", "pass", "timeout"), ("m3", "in", "block", "http_503")]
    try:
        for message_id, direction, verdict, error in decisions:
            event = ModerationChecked(platform="test", message_id=message_id, persona_id="ada",
                                      direction=direction, verdict=verdict, error=error)
            await store.append("conv:test:c1", event.new_event(
                f"moderation:test:{message_id}:ada:{direction}"))
        refused = ModelFailed(platform="test", message_id="m1", persona_id="ada",
                              error_class="moderation", error="refused by moderation (in)",
                              provider="fake")
        await store.append("conv:test:c1", refused.new_event("reply:test:m1:ada"))
        for recorded in await store.read_all():
            recorder.observe(recorded)
    finally:
        await store.close()
    scrape = samples(generate_latest(metrics.registry).decode())
    assert total(scrape, "personae_moderation_decisions_total", persona="ada", direction="in",
                 verdict="block") == 2
    assert total(scrape, "personae_moderation_decisions_total", direction="out",
                 verdict="pass") == 1
    assert total(scrape, "personae_moderation_provider_failures_total", error="timeout") == 1
    assert total(scrape, "personae_moderation_provider_failures_total") == 2
    assert total(scrape, "personae_model_failures_total") == 0  # no model failed
