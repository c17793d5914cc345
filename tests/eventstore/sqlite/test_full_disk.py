"""The SQLite log on a real 2 MB filesystem that fills up: the append fails whole, with
a sentence about the disk, and once space is freed the log checkpoints its write-ahead
log (a full disk stops the automatic checkpoints) and takes appends again for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import LogUnavailable, NewEvent, SQLiteLog
from tests.disks import fill, small_disk

PAD = "x" * 2000


def append_until_full(log: SQLiteLog, start: int) -> tuple[int, LogUnavailable]:
    count = start
    while True:
        try:
            log.append(f"s{count % 40}", [NewEvent("Padded", {"pad": PAD},
                                                   event_id=f"e{count}")])
        except LogUnavailable as exc:
            return count, exc
        count += 1


@pytest.mark.parametrize("duplicate_while_full", [False, True],
                         ids=["nothing while full", "a duplicate while full"])
def test_a_full_disk_fails_the_append_whole_and_the_log_recovers_once_space_is_freed(
        tmp_path: Path, duplicate_while_full: bool) -> None:
    with small_disk(tmp_path / "disk") as disk:
        log = SQLiteLog.open(disk / "log.db", synchronous="normal")
        try:
            log.append("first", [NewEvent("Padded", {"pad": PAD}, event_id="first")])
            filler = fill(disk)
            with pytest.raises(LogUnavailable, match="is full"):
                log.append("s", [NewEvent("Padded", {"pad": PAD}, event_id="refused"),
                                 NewEvent("Padded", {"pad": PAD}, event_id="refused-2")])
            assert log.get("refused") is None and log.last_position() == 1
            if duplicate_while_full:
                # a duplicate (a message recorded before, a catch-up's second look) commits
                # on a full disk, since it writes nothing: no sign the WAL was emptied
                again = log.append("first", [NewEvent("Padded", {"pad": PAD},
                                                      event_id="first")])
                assert again.duplicates == 1
            filler.unlink()
            written, error = append_until_full(log, 0)
            wal = (disk / "log.db-wal").stat().st_size
            in_db = (disk / "log.db").stat().st_size
        finally:
            log.close()
    assert "is full" in str(error)
    # checkpointed: the data moved into the database and the WAL stayed small, so
    # several times more fit than the ~100 events a WAL that is never reset leaves room for
    assert written > 300
    assert wal < 600 * 1024 and in_db > 1024 * 1024
