"""Directories for tests of bad input: their exact state, and a truly read-only one."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


def directory_state(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` with a hash of its bytes: equal states mean nothing
    was written, created or deleted."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


class ReadOnlyDirectory:
    """A directory to fill through ``writable``, then ``seal()`` into a view that
    refuses every write, even root's: a read-only bind mount when we are root (chmod
    does not stop root), chmod 0o555 otherwise."""

    def __init__(self, base: Path) -> None:
        self.writable = base / "source"
        self.writable.mkdir()
        self._view = base / "read-only"
        self._mounted = False

    def seal(self) -> Path:
        if os.geteuid() != 0:
            self.writable.chmod(0o555)
            return self.writable
        self._view.mkdir()
        subprocess.run(["mount", "--bind", str(self.writable), str(self._view)], check=True)
        self._mounted = True
        subprocess.run(["mount", "-o", "remount,ro,bind", str(self._view)], check=True)
        return self._view

    def release(self) -> None:
        if self._mounted:
            subprocess.run(["umount", str(self._view)], check=True)
            self._mounted = False
        self.writable.chmod(0o755)
