"""Copying a log between any two backends: the same events, verified; a copy that does not
read back as its source is caught; a target with events is refused untouched."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import pytest

from eventstore import (
    EVERYTHING,
    CopyError,
    Log,
    MemoryLog,
    NewEvent,
    RecordedEvent,
    copy_log,
    digest_log,
)

from .backends import BACKENDS


def _fill(log: Log) -> None:
    for i in range(30):
        log.append(f"conv:{i % 4}", [NewEvent("Said", {"i": i, "text": "ü" * (i % 3),
                                                       "nested": {"n": [i, None]}},
                                              event_id=f"msg:{i}", correlation_id=f"c{i}")])
    log.append("conv:0", [NewEvent("Old", {"amt": 1}, schema_version=1)])


@pytest.mark.parametrize("source_kind", sorted(BACKENDS))
@pytest.mark.parametrize("target_kind", sorted(BACKENDS))
def test_a_copy_between_backends_holds_the_same_events(
        source_kind: str, target_kind: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source = BACKENDS[source_kind](tmp_path / "a").open_log()
    target = BACKENDS[target_kind](tmp_path / "b").open_log()
    try:
        _fill(source)
        digest = copy_log(source, target)
        assert (digest.events, digest.last_position) == (31, 31)
        assert digest == digest_log(source) == digest_log(target)
        assert list(target.scan(EVERYTHING, upcast=False)) == list(
            source.scan(EVERYTHING, upcast=False))
        assert target.check() == []
        with pytest.raises(CopyError, match="already holds events"):
            copy_log(source, target)
        assert digest_log(target) == digest
    finally:
        source.close()
        target.close()


class _Mangling(MemoryLog):
    """A backend with a bug: it loads one event's data wrong."""

    def load(self, events: Iterable[RecordedEvent]) -> tuple[int, int]:
        def mangled() -> Iterable[RecordedEvent]:
            for event in events:
                yield (dataclasses.replace(event, data={**event.data, "i": -1})
                       if event.position == 7 else event)

        return super().load(mangled())


def test_a_copy_that_does_not_read_back_as_its_source_is_refused(tmp_path: Path) -> None:
    source = BACKENDS["sqlite"](tmp_path).open_log()
    try:
        _fill(source)
        with pytest.raises(CopyError, match=r"does not match .*: 31 events up to position 31 "
                                            r"\(sha256 [0-9a-f]{12}\), not 31 up to 31"):
            copy_log(source, _Mangling())
    finally:
        source.close()


def test_the_digest_sees_every_field(tmp_path: Path) -> None:
    log = BACKENDS["memory"](tmp_path).open_log()
    _fill(log)
    events = list(log.scan(EVERYTHING, upcast=False))
    base = digest_log(log)
    for change in ({"recorded_at": events[3].recorded_at + 1e-6}, {"correlation_id": None},
                   {"schema_version": 2}, {"data": {"i": 3}}, {"type": "Other"}):
        other = MemoryLog()
        other.load([dataclasses.replace(e, **change) if e.position == 4 else e  # type: ignore[arg-type]
                    for e in events])
        assert digest_log(other).sha256 != base.sha256, change
