"""Sealed parts of events: personal content encrypted at rest, erasable by destroying keys.

The store knows nothing of what is personal: a writer names, per event, the fields to
seal, whose they are (a *subject*: an opaque id) and, optionally, a *scope* (an opaque
string, such as one message's revision). The store seals them with AES-GCM under a key
for ``(subject, period, scope)``, where the period is the UTC day the event is written,
and keeps the keys in a mutable key table beside the events (the events stay
append-only). Destroying keys (:class:`Shred`: by subject, by scope prefix, by period,
now or after a delay) makes what they sealed unreadable for good: it reads back as the
placeholders the writer chose, with the field names listed under :data:`ERASED`.

Stored, a sealed event's data holds every clear field as usual and under :data:`SEALED`
one box per seal: ``{"key", "subject", "box", "erased"}`` (``box``: base64 of the
12-byte nonce and the ciphertext; the associated data is the event id, so a box cannot
be moved to another event). ``subject`` stays in clear (it is an id the log keeps
anyway), so an access request and ``db check`` can find a subject's boxes.
"""

from __future__ import annotations

import base64
import os
import secrets as random
import threading
import time
from binascii import a2b_base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from .model import RecordedEvent

SEALED = "_sealed"
"""The key of a stored event's data that holds its sealed boxes."""

ERASED = "_erased"
"""The key of a read event's data listing the fields whose keys were destroyed."""

PERIOD_S = 86400
"""A key's period: one UTC day, so retention shreds content by the day it was written."""

MAX_CACHED_KEYS = 100_000
"""Keys a connection keeps in memory (about 20 MB); past it the cache starts afresh."""

MAX_OPENED = 50_000
"""Opened boxes kept in memory (tens of MB at most); past it the cache starts afresh."""

EPOCH_CHECK_S = 1.0
"""How often a connection asks whether another connection destroyed keys (its cache of
keys is dropped when one did)."""

_NONCE = 12
_UNKNOWN: Any = object()
_EMPTY: tuple[Any, ...] = ("", None, (), [], {})


@dataclass(frozen=True, slots=True, kw_only=True)
class Seal:
    """Seal ``fields`` of an event (field name -> the placeholder it reads back as once its
    key is destroyed) under the key of ``subject`` for the event's period and ``scope``."""

    subject: str
    fields: Mapping[str, Any]
    scope: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shred:
    """Destroy the keys that match every criterion given: ``subject``'s, those whose scope
    starts with ``scope_prefix`` (but is not ``keep_scope``), those of periods before
    ``before_period`` (and made by ``made_before``). ``delay_s`` > 0 marks them to be
    destroyed that much later (by a later shred with ``due``); ``due`` also destroys every
    key whose delay has passed."""

    subject: str | None = None
    scope_prefix: str | None = None
    keep_scope: str | None = None
    before_period: int | None = None
    made_before: float | None = None
    """Only keys made at or before this Unix time (re-applying an erasure to a restored
    backup spares what the person wrote after it)."""
    delay_s: float = 0.0
    due: bool = False
    due_by: float | None = None
    """With ``due``: keys due by this Unix time (None: by the time of the append)."""

    def __post_init__(self) -> None:
        if self.subject is None and self.scope_prefix is None and self.before_period is None \
                and not self.due:
            raise ValueError("a shred names a subject, a scope prefix, a period or due keys")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """One row of the key table, as copied between logs (``secret`` None: destroyed)."""

    key_id: str
    subject: str
    period: int
    scope: str
    secret: bytes | None
    created_at: float
    destroyed_at: float | None = None
    due_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyCounts:
    """How many keys a key table holds, and how many of them are destroyed."""

    keys: int
    destroyed: int


Resealer = Callable[["RecordedEvent"], Sequence[Seal]]
"""What to seal of an event written in clear (migrating a log into a sealed one)."""


class KeyTable(Protocol):
    """A backend's key table, on one connection (inside its current transaction)."""

    def insert(self, record: KeyRecord) -> None:
        """Add a key."""
        ...

    def insert_many(self, records: Sequence[KeyRecord]) -> None:
        """Add keys copied from another log."""
        ...

    def live_of(self, subject: str, *, created_before: float | None = None) -> int:
        """How many live keys ``subject`` has (made at or before ``created_before``)."""
        ...

    def find(self, subject: str, period: int, scope: str) -> tuple[str, bytes] | None:
        """The live key of ``(subject, period, scope)``: ``(key_id, secret)``, or None."""
        ...

    def find_many(self, wanted: Sequence[tuple[str, int, str]]
                  ) -> dict[tuple[str, int, str], tuple[str, bytes]]:
        """The live key of each ``(subject, period, scope)`` that has one."""
        ...

    def secrets(self, key_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The secret of each key that exists (None for a destroyed one)."""
        ...

    def destroy(self, shred: Shred, now: float) -> int:
        """Apply ``shred``; returns how many keys were destroyed or marked."""
        ...

    def epoch(self) -> float:
        """Changes whenever a key is destroyed (the latest destruction time, 0 if none)."""
        ...

    def records(self) -> Iterator[KeyRecord]:
        """Every key, live or destroyed, in key id order."""
        ...

    def counts(self) -> KeyCounts:
        """How many keys, how many destroyed."""
        ...


def period_of(when: float) -> int:
    """The period (UTC day number) of the Unix time ``when``."""
    return int(when // PERIOD_S)


def sealed_subjects(data: Mapping[str, Any]) -> list[str]:
    """The subjects whose content a stored event's ``data`` seals."""
    return [box["subject"] for box in data.get(SEALED, ())]


class Sealer:
    """Seals and opens events for one log: shared by its writer and reader connections
    (one cache of keys), thread-safe. ``enabled`` False: seals are ignored and content is
    stored in clear (what was sealed before still opens)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._ciphers: dict[str, AESGCM | None] = {}
        self._opened: dict[tuple[str, str], dict[str, Any]] = {}
        """What boxes opened to, by event id and box: a conversation's tail is read again
        and again (each box costs a decryption otherwise); dropped with the keys."""
        self._live: dict[tuple[str, int, str], tuple[str, AESGCM]] = {}
        self._pending: list[tuple[str, int, str]] = []
        self._epoch: float | None = None
        self._checked = 0.0

    # -- writing ---------------------------------------------------------------------

    def seal(self, keys: KeyTable, event_id: str, data: Mapping[str, Any],
             seals: Sequence[Seal], now: float) -> Mapping[str, Any]:
        """``data`` with the fields ``seals`` name sealed (keys made in ``keys`` as
        needed, in the caller's transaction: call :meth:`committed` or
        :meth:`rolled_back` after it)."""
        if not seals or not self.enabled:
            return data
        self._refresh(keys)
        out = dict(data)
        boxes = []
        period = period_of(now)
        for seal in seals:
            # an empty value (no files, no reasoning) says nothing: it stays as it is
            plain = {name: out.pop(name) for name in seal.fields
                     if name in out and out[name] not in _EMPTY}
            if not plain:
                continue
            key_id, cipher = self._key(keys, seal.subject, period, seal.scope, now)
            nonce = os.urandom(_NONCE)
            box = cipher.encrypt(nonce, orjson.dumps(plain), event_id.encode())
            boxes.append({"key": key_id, "subject": seal.subject,
                          "box": base64.b64encode(nonce + box).decode(),
                          "erased": {name: seal.fields[name] for name in plain}})
        if boxes:
            out[SEALED] = boxes
        return out

    def prepare(self, keys: KeyTable,
                items: Iterable[tuple[Mapping[str, Any], Sequence[Seal]]], now: float) -> None:
        """Find or make, in one query and one insert, the keys that sealing each
        ``(data, seals)`` at ``now`` will need: a statement per key would make every append
        wait for the database (and, on SQLite, for the GIL) once per key."""
        if not self.enabled:
            return
        self._refresh(keys)
        period = period_of(now)
        needed = [(seal.subject, period, seal.scope) for data, seals in items for seal in seals
                  if any(data.get(name, "") not in _EMPTY for name in seal.fields)]
        with self._lock:
            wanted = [t for t in dict.fromkeys(needed) if t not in self._live]
        if not wanted:
            return
        found = keys.find_many(wanted)
        made = []
        for triple in wanted:
            if triple not in found:
                secret = AESGCM.generate_key(bit_length=256)
                found[triple] = (random.token_hex(8), secret)
                made.append(KeyRecord(key_id=found[triple][0], subject=triple[0],
                                      period=period, scope=triple[2], secret=secret,
                                      created_at=now))
        keys.insert_many(made)
        with self._lock:
            self._trim()
            for triple, (key_id, secret) in found.items():
                live = (key_id, AESGCM(secret))
                self._live[triple] = live
                self._ciphers[key_id] = live[1]
            self._pending.extend((r.subject, r.period, r.scope) for r in made)

    def preload(self, keys: KeyTable, key_ids: Iterable[str]) -> None:
        """Read, in one query, the keys of ``key_ids`` not cached yet (before opening
        a chunk of events)."""
        self._refresh(keys)
        with self._lock:
            missing = [k for k in dict.fromkeys(key_ids) if k not in self._ciphers]
        if not missing:
            return
        found = keys.secrets(missing)
        with self._lock:
            self._trim()
            for key_id in missing:
                secret = found.get(key_id)
                self._ciphers[key_id] = AESGCM(secret) if secret is not None else None

    def _trim(self) -> None:
        if len(self._ciphers) > MAX_CACHED_KEYS:  # (under the lock)
            self._ciphers.clear()
            self._opened.clear()
            self._live.clear()

    def reseal(self, keys: KeyTable, event: RecordedEvent, reseal: Resealer) -> RecordedEvent:
        """``event`` (as stored) with what ``reseal`` names sealed, under keys of the period
        it was recorded in, if it holds no box yet."""
        if not self.enabled or SEALED in event.data:
            return event
        erased = set(event.data.get(ERASED, ()))
        seals = [s if not erased else Seal(subject=s.subject, scope=s.scope, fields={
            name: value for name, value in s.fields.items() if name not in erased})
            for s in reseal(event)]
        # what was erased before holds placeholders only: nothing to seal again
        seals = [s for s in seals if s.fields]
        if not seals:
            return event
        return replace(event, data=self.seal(keys, event.event_id, event.data, seals,
                                             event.recorded_at))

    def _key(self, keys: KeyTable, subject: str, period: int, scope: str,
             now: float) -> tuple[str, AESGCM]:
        wanted = (subject, period, scope)
        with self._lock:
            live = self._live.get(wanted)
        if live is not None:
            return live
        found = keys.find(subject, period, scope)
        if found is None:
            secret = AESGCM.generate_key(bit_length=256)
            found = (random.token_hex(8), secret)
            keys.insert(KeyRecord(key_id=found[0], subject=subject, period=period, scope=scope,
                                  secret=secret, created_at=now))
            with self._lock:
                self._pending.append(wanted)
        live = (found[0], AESGCM(found[1]))
        with self._lock:
            self._live[wanted] = live
            self._ciphers[live[0]] = live[1]
        return live

    def mark(self) -> int:
        """Where the keys made from now on start (for :meth:`rolled_back`)."""
        with self._lock:
            return len(self._pending)

    def committed(self) -> None:
        """The transaction that made the pending keys committed: they are real."""
        with self._lock:
            self._pending.clear()

    def rolled_back(self, mark: int = 0) -> None:
        """The keys made since ``mark`` were rolled back: never use them again."""
        with self._lock:
            for wanted in self._pending[mark:]:
                live = self._live.pop(wanted, None)
                if live is not None:
                    self._ciphers.pop(live[0], None)
            del self._pending[mark:]

    def shred(self, keys: KeyTable, shreds: Iterable[Shred], now: float) -> int:
        """Apply ``shreds`` to ``keys`` (in the caller's transaction); the cache of keys is
        dropped, so nothing destroyed is used again."""
        count = 0
        for shred in shreds:
            count += keys.destroy(shred, now)
        self.forget_cache()
        return count

    def forget_cache(self) -> None:
        """Drop every cached key: the next use reads the key table again."""
        with self._lock:
            self._ciphers.clear()
            self._opened.clear()
            self._live.clear()
            self._epoch = None

    # -- reading ---------------------------------------------------------------------

    def open(self, keys: KeyTable, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (as stored, decoded) with its boxes opened, or their placeholders where
        the key is destroyed (the fields then listed under :data:`ERASED`). Call
        :meth:`preload` with a chunk's keys first (which also notices other connections'
        destructions): this runs for every sealed event of every read."""
        boxes = data.pop(SEALED, None)
        if not boxes:
            return data
        erased: list[str] = []
        opened, ciphers = self._opened, self._ciphers
        aad = event_id.encode()
        for box in boxes:
            seen = (event_id, box["box"])
            plain = opened.get(seen)
            if plain is None:
                cipher = ciphers.get(box["key"], _UNKNOWN)
                if cipher is _UNKNOWN:
                    cipher = self._cipher(keys, box["key"])
                if cipher is not None:
                    raw = a2b_base64(box["box"])
                    try:
                        plain = orjson.loads(cipher.decrypt(raw[:_NONCE], raw[_NONCE:], aad))
                    except InvalidTag:
                        plain = None  # not this event's box: treated as erased, never shown
                    if plain is not None:
                        if len(opened) >= MAX_OPENED:
                            opened.clear()
                        opened[seen] = plain
            if plain is None:
                data.update(box["erased"])
                erased.extend(box["erased"])
            else:
                data.update(plain)
        if erased:
            data[ERASED] = sorted(erased)
        return data

    def _cipher(self, keys: KeyTable, key_id: str) -> AESGCM | None:
        with self._lock:
            if key_id in self._ciphers:
                return self._ciphers[key_id]
        secret = keys.secrets([key_id]).get(key_id)
        cipher = AESGCM(secret) if secret is not None else None
        with self._lock:
            self._ciphers[key_id] = cipher
        return cipher

    def _refresh(self, keys: KeyTable) -> None:
        """Drop the cache when another connection destroyed keys since it was filled."""
        now = time.monotonic()
        if now - self._checked < EPOCH_CHECK_S:
            return
        epoch = keys.epoch()
        with self._lock:
            if self._epoch is not None and epoch != self._epoch:
                self._ciphers.clear()
                self._opened.clear()
                self._live.clear()
            self._epoch = epoch
            self._checked = now


def after_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
