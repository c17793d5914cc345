"""Hostile message contents (hypothesis) against the real bot process: no crash, every
reply within Discord's limits, every message recorded, nobody pinged."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .harness import DISCORD_CONTENT_LIMIT, BotSettings, ChaosRig, Sent, recorded_event_ids

T = TypeVar("T")

ZERO_WIDTH_AND_BIDI = ("\u200b\u200c\u200d\u2060\ufeff"                      # zero width
                       "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # embeddings
                       "\u200e\u200f\u061c")                                # marks
MARKDOWN = ["```", "```py\n", "`", "**", "__", "~~", "||", "> ", ">>> ", "# ", "-# ", "\n",
            "[x](https://example.org)", "<t:0:R>", "\\"]


def mention_bomb(rig: ChaosRig) -> st.SearchStrategy[str]:
    """Hundreds of user/role mentions, @everyone/@here, the @everyone role by id."""
    conversation = rig.conversations[0]
    guild_id = conversation.channel.guild_id
    tokens = [f"<@{c.user.id}>" for c in rig.conversations] + [
        "@everyone", "@here", f"<@&{guild_id}>", f"<@!{rig.emu.bot_user.id}>",
        "<@&1>", "<@0>", "@\u200beveryone", "＠everyone"]
    return st.lists(st.sampled_from(tokens), min_size=100, max_size=400).map(" ".join)


def hostile_text(rig: ChaosRig) -> st.SearchStrategy[str]:
    long_text = st.builds(lambda piece, n: (piece * n)[:100_000],
                          st.text(min_size=1, max_size=20), st.integers(3_000, 100_000))
    return st.one_of(
        st.text(max_size=3000),                                           # any unicode
        long_text,                                                         # up to 100 KB
        st.text(alphabet=st.sampled_from(["\x00", "a", " ", "\x7f", "\ud7ff", "\U0010ffff"]),
                max_size=500),                                             # null bytes
        st.lists(st.sampled_from([*ZERO_WIDTH_AND_BIDI, "abc", "שלום", "مرحبا"]),
                 max_size=500).map("".join),                               # RTL, zero width
        mention_bomb(rig),
        st.lists(st.sampled_from(MARKDOWN), min_size=50, max_size=3000).map("".join),
        st.just("```" * 5000), st.just("@everyone " * 1000),
    ).map(lambda text: " " + text)


def _posted_whole(answer: str, posted: str) -> bool:
    """Every character of the model's ``answer`` but whitespace is in ``posted``, in
    order: splitting at 2,000 characters drops the whitespace at a cut and closes and
    reopens a code block it cuts, and changes nothing else."""
    rest = iter(posted)
    return all(character in rest for character in answer if not character.isspace())


class _LoopThread:
    """An event loop in a thread: hypothesis calls synchronous code, the rig is async."""

    def __enter__(self) -> _LoopThread:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def _running_rig(tmp_path: Path) -> Iterator[tuple[_LoopThread, ChaosRig]]:
    with _LoopThread() as thread:
        opening = ChaosRig.open(tmp_path, conversations=200, settings=BotSettings())
        rig = thread.run(opening.__aenter__())
        try:
            thread.run(rig.bot.start())
            thread.run(rig.until_connected())
            yield thread, rig
        finally:
            thread.run(opening.__aexit__(None, None, None))


def test_hostile_contents_crash_nothing_stay_in_limits_are_recorded_and_ping_nobody(
        tmp_path: Path) -> None:
    with _running_rig(tmp_path) as (thread, rig):
        turn = iter(range(1_000_000))

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(hostile_text(rig))
        @example(" " + "\u202eelbat\u200b" * 10_000)             # 100 KB, RTL, zero width
        @example(" a\x00b" * 25_000)                             # 100 KB of null bytes
        @example(" " + " ".join(f"<@{c.user.id}>" for c in rig.conversations)
                 + " @everyone @here")                           # 300 mentions (forged)
        @example(" ```py\n" * 3_000)                             # a code-fence bomb
        @example(" " + "`" * 15_000)                             # one 15,000-backtick "fence"
        @example(" 0" * 50_000)                                  # 100 KB of short tokens
        @example(" " + "\u2028" * 100_000)                       # 100 KB of line separators
        def exchange(text: str) -> None:
            conversation = rig.conversations[next(turn) % 8]

            async def say_and_wait() -> Sent:
                sent = await rig.say(conversation, text)
                await asyncio.wait_for(sent.answered.wait(), 40)
                return sent

            sent = thread.run(say_and_wait())
            assert len(sent.answers) == 1 and sent.replies, sent.answers

        exchange()
        thread.run(rig.settle(10))
        assert thread.run(rig.bot.stop()) == 0

        verdict = rig.verdict()
        assert verdict.exactly_once, verdict
        assert verdict.replied == verdict.sent
        assert verdict.pinged == []
        ours = [m for s in rig.sent for m in [*s.answers, *s.parts]]
        assert all(0 < len(m.content) <= DISCORD_CONTENT_LIMIT for m in ours)
        # a reply is cut into as few messages as fit it, not into one-character spam
        assert all(len(s.answers) + len(s.parts) <= len(s.message.content) // 1500 + 2
                   for s in rig.sent)
        refused = [r for r in rig.emu.requests if r.status >= 400]
        assert refused == []
        # the fake model echoes the message, cut at the persona's max_tokens (3,000 of its
        # whitespace-delimited tokens): a long message comes back as long as those tokens
        # make it (100 KB of two-character tokens is 6,000 characters, three messages;
        # of whitespace alone, the key alone), and all of it is posted, in order, however
        # many messages that takes
        long_ones = [s for s in rig.sent if len(s.message.content) >= 100_000]
        assert long_ones
        for s in long_ones:
            assert _posted_whole(rig.model_answer(s), s.text), (s.message.id, len(s.parts))
        # 100 KB of null bytes and words: 12,000 characters back, in seven messages
        assert any(len(s.parts) >= 4 for s in long_ones)
        received = recorded_event_ids(rig.config, "msg:discord:")
        assert {f"msg:discord:{s.message.id}" for s in rig.sent} <= received
        delivered = recorded_event_ids(rig.config, "delivered:discord:")
        undelivered = {f"delivered:discord:{s.message.id}:ada" for s in rig.sent} - delivered
        assert undelivered == set(), sorted(recorded_event_ids(rig.config, "reply:discord:"))
        assert rig.bot.unhandled_errors() == []
