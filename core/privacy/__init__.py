"""Privacy over the log: erasing a person (their keys destroyed, the erasure recorded and
written to a ledger kept apart), shredding old content on a schedule, and sealing a log
written in clear. The store seals and shreds (:mod:`eventstore.sealing`); the catalogue
says what is personal (``DomainEvent.personal``); this package decides when.
See ``docs/privacy.md``.
"""

from .forget import forget_event, reseal
from .ledger import ErasureLedger, LedgerEntry
from .retention import RetentionScheduler, retention_event

__all__ = [
    "ErasureLedger",
    "LedgerEntry",
    "RetentionScheduler",
    "forget_event",
    "reseal",
    "retention_event",
]
