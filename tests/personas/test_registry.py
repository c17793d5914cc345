"""The registry serves the last good version of every persona."""

from __future__ import annotations

from pathlib import Path

from core.personas.loader import load_personas
from core.personas.registry import PersonaRegistry

from .conftest import MINIMAL, PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m"}}


def reload(registry: PersonaRegistry, directory: Path):
    return registry.replace(load_personas(directory, defaults=DEFAULTS, known_providers=PROVIDERS))


def test_add_update_break_fix_delete(tmp_path: Path) -> None:
    registry = PersonaRegistry()
    ada = tmp_path / "ada.yaml"
    ada.write_text(MINIMAL, encoding="utf-8")
    assert reload(registry, tmp_path).added == ("ada",)
    first = registry.get("ada")

    ada.write_text(MINIMAL.replace("Ada", "Ada Two"), encoding="utf-8")
    change = reload(registry, tmp_path)
    assert change.updated == ("ada",) and registry.get("ada").name == "Ada Two"

    ada.write_text("id: ada\nname: [broken\n", encoding="utf-8")
    change = reload(registry, tmp_path)
    assert change.kept == ("ada",) and not change.retired
    assert registry.get("ada").name == "Ada Two"

    ada.write_text(MINIMAL, encoding="utf-8")
    change = reload(registry, tmp_path)
    assert change.updated == ("ada",) and registry.get("ada").version == first.version

    ada.unlink()
    assert reload(registry, tmp_path).retired == ("ada",)
    assert registry.get("ada") is None and registry.all() == ()


def test_unchanged_reload_changes_nothing(tmp_path: Path) -> None:
    registry = PersonaRegistry()
    (tmp_path / "ada.yaml").write_text(MINIMAL, encoding="utf-8")
    reload(registry, tmp_path)
    change = reload(registry, tmp_path)
    assert change.changed == () and change.retired == ()


def test_a_broken_file_never_seen_good_serves_nothing(tmp_path: Path) -> None:
    registry = PersonaRegistry()
    (tmp_path / "bad.yaml").write_text("id: [\n", encoding="utf-8")
    reload(registry, tmp_path)
    assert registry.all() == ()


def test_all_is_sorted_by_id(tmp_path: Path) -> None:
    registry = PersonaRegistry()
    for persona_id in ("zed", "amy"):
        (tmp_path / f"{persona_id}.yaml").write_text(
            MINIMAL.replace("id: ada", f"id: {persona_id}"), encoding="utf-8")
    reload(registry, tmp_path)
    assert [p.id for p in registry.all()] == ["amy", "zed"]
