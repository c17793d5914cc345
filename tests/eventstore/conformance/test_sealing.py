"""Sealed content, on every backend: stored encrypted, read back opened, erased for good
when its keys are destroyed, while ids, versions and idempotency stay as they were."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from eventstore import (
    ERASED,
    EVERYTHING,
    SEALED,
    EventStoreError,
    MemoryLog,
    NewEvent,
    Seal,
    Shred,
    period_of,
)
from eventstore import sealing as sealing_module

from ..backends import Backend


def _said(n: int, who: str, text: str, *, scope: str = "") -> NewEvent:
    return NewEvent("Said", {"who": who, "text": text, "n": n}, event_id=f"msg:{n}",
                    seals=(Seal(subject=who, fields={"text": "[erased]"}, scope=scope),))


def _forget(who: str, n: int) -> NewEvent:
    return NewEvent("Forgot", {"who": who}, event_id=f"forget:{n}",
                    shreds=(Shred(subject=who),))


def test_sealed_fields_are_not_stored_in_clear_and_read_back_opened(backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("conv:1", [_said(1, "ann", "my secret plan"), _said(2, "bob", "hello")])
        stored = list(log.scan(EVERYTHING, upcast=False))
        assert all("text" not in e.data and SEALED in e.data for e in stored)
        assert "my secret plan" not in str([e.data for e in stored])
        assert [e.data["who"] for e in stored] == ["ann", "bob"]  # clear fields stay clear
        assert [e.data["text"] for e in log.read_stream("conv:1")] == ["my secret plan", "hello"]
        assert b"my secret plan" in b"".join(log.json_lines(EVERYTHING))
        other = log.reader()
        try:
            assert other.get("msg:1").data["text"] == "my secret plan"  # type: ignore[union-attr]
        finally:
            other.close()
    finally:
        log.close()


def test_shredding_a_subject_erases_its_content_and_keeps_everything_else(
        backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("conv:1", [_said(1, "ann", "ann's words"), _said(2, "bob", "bob's words")])
        reader = log.reader()
        assert reader.get("msg:1").data["text"] == "ann's words"  # type: ignore[union-attr]
        log.append("privacy", [_forget("ann", 1)])
        events = log.read_stream("conv:1")
        assert [e.data["text"] for e in events] == ["[erased]", "bob's words"]
        assert events[0].data[ERASED] == ["text"] and ERASED not in events[1].data
        assert [(e.position, e.version, e.data["n"]) for e in events] == [(1, 1, 1), (2, 2, 2)]
        # a reader of the same log that had the key cached sees the erasure at once
        assert reader.get("msg:1").data["text"] == "[erased]"  # type: ignore[union-attr]
        reader.close()
        # exactly-once holds over erased content: the same message again is a no-op
        again = log.append("conv:1", [_said(1, "ann", "ann's words")])
        assert again.duplicates == 1 and log.last_position() == 3
        assert "ann's words" not in b"".join(log.json_lines(EVERYTHING)).decode()
        # new content of a forgotten subject gets a new key and is readable
        log.append("conv:1", [_said(4, "ann", "back again")])
        assert log.get("msg:4").data["text"] == "back again"  # type: ignore[union-attr]
        counts = log.key_table().counts()
        assert counts.destroyed == 1 and counts.keys == 3
    finally:
        log.close()


def test_another_connection_sees_a_shred_made_elsewhere(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing_module, "EPOCH_CHECK_S", 0.0)
    first = backend.open_log()
    try:
        first.append("conv:1", [_said(1, "ann", "cached words")])
        assert first.get("msg:1").data["text"] == "cached words"  # type: ignore[union-attr]
        second = backend.open_log()  # another process's log, with a cache of its own
        try:
            second.append("privacy", [_forget("ann", 1)])
        finally:
            second.close()
        time.sleep(0.01)  # the destruction time must differ from the cached epoch's
        assert first.get("msg:1").data["text"] == "[erased]"  # type: ignore[union-attr]
    finally:
        first.close()


def test_shreds_by_scope_keep_the_scope_asked_for(backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("conv:1", [_said(1, "ann", "first draft", scope="m:1/text/0"),
                              _said(2, "ann", "second draft", scope="m:1/text/1"),
                              _said(3, "ann", "another message", scope="m:10/text/0")])
        log.append("conv:1", [NewEvent("Edited", {}, event_id="edit:1", shreds=(
            Shred(scope_prefix="m:1/text/", keep_scope="m:1/text/1"),))])
        assert [e.data.get("text") for e in log.read_stream("conv:1")][:3] == [
            "[erased]", "second draft", "another message"]
    finally:
        log.close()


def test_a_delayed_shred_destroys_keys_once_due(backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("conv:1", [_said(1, "ann", "deleted later", scope="m:1/text/0")])
        log.append("conv:1", [NewEvent("Deleted", {}, event_id="del:1", shreds=(
            Shred(scope_prefix="m:1/", delay_s=3600),))])
        assert log.get("msg:1").data["text"] == "deleted later"  # type: ignore[union-attr]
        log.append("sweep", [NewEvent("Swept", {}, event_id="sweep:1",
                                      shreds=(Shred(due=True),))])
        assert log.get("msg:1").data["text"] == "deleted later"  # not due yet
        due = [r for r in log.key_table().records() if r.due_at is not None]
        assert len(due) == 1 and due[0].due_at > time.time() + 3500  # type: ignore[operator]
    finally:
        log.close()


def test_a_failed_request_leaves_no_key_behind(backend: Backend) -> None:
    log = backend.open_log()
    try:
        bad = NewEvent("Said", {"who": "ann", "text": "lost", "n": float("nan")},
                       event_id="msg:1", seals=(Seal(subject="ann", fields={"text": ""}),))
        with pytest.raises(EventStoreError):
            log.append("conv:1", [bad])
        log.append("conv:1", [_said(2, "ann", "kept")])
        assert log.get("msg:2").data["text"] == "kept"  # type: ignore[union-attr]
        assert log.key_table().counts().keys == 1
    finally:
        log.close()


def test_old_content_loaded_in_clear_is_sealed_by_period_and_shredded_by_age(
        backend: Backend) -> None:
    source = MemoryLog(seal=False)
    source.append("conv:1", [_said(1, "ann", "ancient words"), _said(2, "ann", "new words")])
    plain = list(source.scan(EVERYTHING, upcast=False))
    assert plain[0].data["text"] == "ancient words"  # sealing off: stored in clear
    now = time.time()
    aged = [replace(plain[0], recorded_at=now - 40 * 86400), replace(plain[1], recorded_at=now)]
    target = backend.open_log()
    try:
        target.load(aged, reseal=lambda e: (Seal(subject=e.data["who"], fields={"text": "[x]"}),))
        stored = list(target.scan(EVERYTHING, upcast=False))
        assert all(SEALED in e.data and "text" not in e.data for e in stored)
        assert [e.data["text"] for e in target.read_all()] == ["ancient words", "new words"]
        target.append("retention", [NewEvent("Expired", {}, event_id="retention:1", shreds=(
            Shred(before_period=period_of(now - 30 * 86400)),))])
        assert [e.data.get("text") for e in target.read_all()] == ["[x]", "new words", None]
    finally:
        target.close()


def test_keys_copied_to_another_log_open_its_copied_events(backend: Backend) -> None:
    source = MemoryLog()
    source.append("conv:1", [_said(1, "ann", "travels")])
    events = list(source.scan(EVERYTHING, upcast=False))
    keys = list(source.key_table().records())
    copy = backend.open_log()
    try:
        copy.load(events)
        assert copy.get("msg:1").data["text"] == "[erased]"  # type: ignore[union-attr]
        assert copy.load_keys(keys) == 1
        assert copy.get("msg:1").data["text"] == "travels"  # type: ignore[union-attr]
        with pytest.raises(EventStoreError):
            copy.load_keys(keys)
    finally:
        copy.close()
