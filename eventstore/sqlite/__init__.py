"""The SQLite backend: the embedded default, one WAL-mode file (see ``docs/eventstore.md``)."""

from .backup import BackupError, BackupResult, backup_log
from .check import check_log
from .keyfile import key_file_for, read_key_file, write_key_file
from .log import SQLiteLog

__all__ = ["BackupError", "BackupResult", "SQLiteLog", "backup_log", "check_log",
           "key_file_for", "read_key_file", "write_key_file"]
