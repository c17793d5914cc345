"""A small real filesystem for tests of a full disk: tmpfs with a size (needs root)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

DISK_BYTES = 2 * 1024 * 1024


@contextlib.contextmanager
def small_disk(where: Path, size: int = DISK_BYTES) -> Iterator[Path]:
    """A real filesystem of ``size`` bytes mounted at ``where`` (skips the test where
    mounting is not allowed)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(where)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte with one file; returns it (delete it to
    give the space back)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def no_room(disk: Path) -> bool:
    """True when not a block is free."""
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize < 4096
