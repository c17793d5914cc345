"""From scores to a verdict and from a verdict to actions, for one persona and direction.

A category's score is held to its thresholds: the category's own (``harassment/threatening``),
else its family's (``harassment``), else ``default``; a persona's levels come before
config's, and a level it leaves out is config's for that category. A level may be
None (``never``): a category with ``block: never`` only ever flags. The strongest
verdict over all categories wins. ``refuse`` means something only for the verdict it is
listed under; a provider failure under ``fail: closed`` is a block that refuses,
whatever the lists say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import MODERATION_CATEGORY_DEFAULT, ModerationSettings
from ..events import ModerationAction, ModerationDirection, ModerationVerdict
from ..personas.model import Persona

_STRENGTH = {ModerationVerdict.PASS: 0, ModerationVerdict.FLAG: 1, ModerationVerdict.BLOCK: 2}


Levels = tuple[float | None, float | None]
"""A category's (flag, block) scores; None: never."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What one persona's texts in one direction are held to."""

    direction: ModerationDirection
    thresholds: Mapping[str, Levels]
    actions: Mapping[str, tuple[str, ...]]
    fail_closed: bool

    def thresholds_for(self, category: str) -> Levels:
        """(flag, block) for ``category``."""
        return _resolve(self.thresholds, category)


def _resolve(thresholds: Mapping[str, Levels], category: str) -> Levels:
    for key in (category, category.split("/", 1)[0], MODERATION_CATEGORY_DEFAULT):
        if key in thresholds:
            return thresholds[key]
    return (None, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """A verdict with what led to it and what is to be done."""

    verdict: ModerationVerdict
    actions: tuple[str, ...]
    matched: tuple[str, ...]
    thresholds: Mapping[str, Mapping[str, float | None]]
    failed_closed: bool = False


def policy_for(settings: ModerationSettings, persona: Persona,
               direction: ModerationDirection) -> Policy | None:
    """What ``persona``'s texts going ``direction`` are held to; None when moderation
    is off for them."""
    if not settings.enabled:
        return None
    override = persona.moderation
    on = override.inbound if direction == ModerationDirection.IN else override.outbound
    if on is None:
        on = settings.inbound if direction == ModerationDirection.IN else settings.outbound
    if not on:
        return None
    thresholds: dict[str, Levels] = {name: (t.flag, t.block)
                                     for name, t in settings.thresholds.items()}
    for name, levels in override.thresholds.items():
        flag, block = _resolve(thresholds, name)  # the levels the persona leaves out
        thresholds[name] = (levels.get("flag", flag), levels.get("block", block))
    return Policy(direction=direction, thresholds=thresholds,
                  actions={**settings.actions, **override.actions},
                  fail_closed=settings.fail == "closed")


def judge(policy: Policy, scores: Mapping[str, float], *, failed: bool) -> Judgement:
    """The verdict ``scores`` come to under ``policy`` (``failed``: the provider did not
    answer, so only the local lists' scores are there)."""
    verdict = ModerationVerdict.PASS
    matched: list[str] = []
    used: dict[str, dict[str, float | None]] = {}
    for category, score in sorted(scores.items()):
        flag, block = policy.thresholds_for(category)
        used[category] = {"flag": flag, "block": block}
        found = (ModerationVerdict.BLOCK if block is not None and score >= block else
                 ModerationVerdict.FLAG if flag is not None and score >= flag else
                 ModerationVerdict.PASS)
        if found != ModerationVerdict.PASS:
            matched.append(category)
        if _STRENGTH[found] > _STRENGTH[verdict]:
            verdict = found
    if failed and policy.fail_closed:
        block_actions = policy.actions.get(ModerationVerdict.BLOCK, ())
        actions = (ModerationAction.REFUSE.value,
                   *(a for a in block_actions if a == ModerationAction.ALERT))
        return Judgement(verdict=ModerationVerdict.BLOCK, actions=actions,
                         matched=tuple(matched), thresholds=used, failed_closed=True)
    actions = () if verdict == ModerationVerdict.PASS else policy.actions.get(verdict.value, ())
    return Judgement(verdict=verdict, actions=tuple(actions), matched=tuple(matched),
                     thresholds=used)
