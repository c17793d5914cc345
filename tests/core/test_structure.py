"""The shape of the code that keeps it one piece: events are written only through the
catalogue, SQL on the log only inside the event store, event types are keyword-only
frozen dataclasses that read back as what was written."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from core.events import (
    CATALOGUE,
    DomainEvent,
    Refusal,
    RefusalKind,
    TriggerRejected,
    from_recorded,
    upcasters,
)
from eventstore import MemoryLog, NewEvent, RecordedEvent

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_only_the_catalogue_builds_new_events() -> None:
    """Every event written goes through a catalogued type's ``new_event``: a NewEvent
    built anywhere else could write a type the catalogue does not know."""
    offenders = []
    for path in _python_files(CORE):
        if path.is_relative_to(CORE / "events"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NewEvent":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


_SQL_ON_THE_LOG = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+events\b|\.connection\b|"
                             r"projection_positions", re.IGNORECASE)


def test_no_sql_on_the_log_outside_the_event_store() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for path in _python_files(CORE)
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if _SQL_ON_THE_LOG.search(line)]
    assert offenders == []


@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_every_event_type_is_a_frozen_keyword_only_dataclass(cls: type[DomainEvent]) -> None:
    assert dataclasses.is_dataclass(cls)
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls))
    with pytest.raises(TypeError):
        cls("positional")  # type: ignore[call-arg]


def _example(cls: type[DomainEvent]) -> DomainEvent:
    """An instance with every field set to a value of its annotated kind."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = str(f.type)
        if f.name == "reason" and cls is TriggerRejected:
            values[f.name] = Refusal.of(RefusalKind.QUOTA, "tokens")
        elif f.name == "reason":
            values[f.name] = "mention"
        elif kind.startswith("tuple[Mapping"):
            values[f.name] = ({"role": "user", "content": "hi"},)
        elif kind.startswith("tuple"):
            values[f.name] = ("a", "b") if "str" in kind else (1, 2)
        elif kind.startswith("Mapping"):
            values[f.name] = {"k": "v"}
        elif kind.startswith("bool"):
            values[f.name] = True
        elif kind.startswith("int"):
            values[f.name] = 7
        elif kind.startswith("float"):
            values[f.name] = 1.5
        else:
            values[f.name] = f"{f.name}-value"
    return cls(**values)


@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_every_event_type_reads_back_as_it_was_written(cls: type[DomainEvent]) -> None:
    event = _example(cls)
    new = event.new_event("some-id")
    assert new.type == cls.type and new.schema_version == cls.schema_version
    recorded = RecordedEvent(position=1, event_id="some-id", stream_id="s", version=1,
                             type=new.type, schema_version=new.schema_version,
                             data=orjson.loads(orjson.dumps(dict(new.data))), recorded_at=0.0)
    assert from_recorded(recorded) == event


def test_a_refusal_is_its_stable_text_and_reads_back_as_its_parts() -> None:
    refusal = Refusal.of(RefusalKind.PERMISSION, "role_denied")
    assert refusal == "permission:role_denied"
    assert (Refusal("busy").kind, Refusal("busy").detail) == (RefusalKind.BUSY, "")
    assert (refusal.kind, refusal.detail) == (RefusalKind.PERMISSION, "role_denied")
    with pytest.raises(ValueError):
        Refusal("made_up:thing")


def test_an_upcast_must_lead_to_the_types_schema_version() -> None:
    with pytest.raises(TypeError, match="cannot lead to schema version"):
        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Wrong(DomainEvent):
            type: ClassVar[str] = "Wrong"
            schema_version: ClassVar[int] = 2
            upcasts: ClassVar[Mapping[int, Any]] = {2: lambda data: data}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Renamed(DomainEvent):
    """v1 stored ``{"who": ...}``; v2 calls it ``author_id``."""

    type: ClassVar[str] = "Renamed"
    schema_version: ClassVar[int] = 2
    upcasts: ClassVar[Mapping[int, Any]] = {1: lambda data: {"author_id": data["who"]}}
    author_id: str


def test_upcasts_declared_beside_a_type_are_applied_by_the_store_on_read() -> None:
    log = MemoryLog(upcasters=upcasters([_Renamed]))
    log.append("s", [NewEvent("Renamed", {"who": "u1"}, event_id="old", schema_version=1),
                     _Renamed(author_id="u2").new_event("new")])
    old, new = log.read_stream("s")
    assert (old.schema_version, _Renamed.from_data(old.data)) == (2, _Renamed(author_id="u1"))
    assert (new.schema_version, _Renamed.from_data(new.data)) == (2, _Renamed(author_id="u2"))
