"""The model gateway's own overhead per call, against the raw openai SDK.

Starts the fake OpenAI server in its own process (zero latency), then times,
alternating call by call so both see the same machine noise, the same Chat Completions
call made (a) with the raw SDK (``AsyncOpenAI``, ``max_retries=0``) and (b) through
``ModelGateway.complete``. Also times the gateway with the offline provider (no
HTTP at all: the policy, filters and bookkeeping alone) and the token estimator.
With ``bpe-openai`` installed, ``--tokens`` compares the estimate with real counts.

    python bench/gateway.py [--calls 2000] [--json] [--tokens]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import ProviderSettings  # noqa: E402
from core.credentials import Secrets  # noqa: E402
from core.gateway.gateway import ModelGateway  # noqa: E402
from core.gateway.model import ChatMessage, ModelRequest  # noqa: E402
from core.gateway.tokens import estimate_tokens  # noqa: E402

MESSAGES = (
    ChatMessage("system", "You are Ada, a patient Python tutor. Answer briefly."),
    ChatMessage("user", "what is a list?"),
    ChatMessage("assistant", "An ordered, mutable sequence of values."),
    ChatMessage("user", "and a tuple?"),
)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.split(" on ", 1)[1].split()[0]


async def _raw_call(client: AsyncOpenAI, stream: bool) -> None:
    payload = [m.to_openai() for m in MESSAGES]
    if stream:
        chunks = await client.chat.completions.create(
            model="fake-model", messages=payload, stream=True,
            stream_options={"include_usage": True})
        text = []
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
    else:
        completion = await client.chat.completions.create(model="fake-model", messages=payload)
        assert completion.choices[0].message.content


async def _timed(call: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def _compare(base_url: str, calls: int, stream: bool) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    gateway = ModelGateway({"fake": ProviderSettings("fake", base_url=base_url)}, Secrets({}))
    request = ModelRequest(provider="fake", model="fake-model", messages=MESSAGES, stream=stream)

    async def through_gateway() -> None:
        outcome = await gateway.complete(request)
        assert outcome.ok, outcome.error

    async def raw() -> None:
        await _raw_call(client, stream)

    await _timed(raw, 200)  # warm-up: connections, imports, caches
    await _timed(through_gateway, 200)
    raw_samples: list[float] = []
    gateway_samples: list[float] = []
    for _ in range(calls):  # one of each in turn, so both see the same noise
        raw_samples += await _timed(raw, 1)
        gateway_samples += await _timed(through_gateway, 1)
    await client.close()
    await gateway.aclose()
    raw_stats, gateway_stats = _percentiles(raw_samples), _percentiles(gateway_samples)
    return {
        "calls_each": len(raw_samples),
        "raw_sdk": raw_stats,
        "gateway": gateway_stats,
        "overhead_p50_ms": round(gateway_stats["p50_ms"] - raw_stats["p50_ms"], 3),
        "overhead_p99_ms": round(gateway_stats["p99_ms"] - raw_stats["p99_ms"], 3),
    }


async def _offline(calls: int) -> dict[str, float]:
    gateway = ModelGateway({}, Secrets({}))
    request = ModelRequest(provider="offline", model="stand-in", messages=MESSAGES)

    async def call() -> None:
        await gateway.complete(request)

    await _timed(call, 200)
    return _percentiles(await _timed(call, calls))


def _estimator_speed() -> dict[str, float]:
    text = (ROOT / "core" / "gateway" / "gateway.py").read_text() * 4
    mixed = "Привет, как дела? こんにちは 🙂 " * 2000
    result = {}
    for name, sample in (("ascii", text), ("non_ascii", mixed)):
        started = time.perf_counter()
        for _ in range(200):
            estimate_tokens(sample)
        elapsed = time.perf_counter() - started
        result[f"{name}_mchars_per_s"] = round(len(sample) * 200 / elapsed / 1e6)
    return result


def _token_accuracy() -> dict[str, Any]:
    try:
        import bpe_openai
    except ImportError:
        return {"skipped": "pip install bpe-openai to compare with real tokenizers"}
    import pydoc
    samples = {
        "english": pydoc.render_doc(asyncio, renderer=pydoc.plaintext)[:40000],
        "python": (ROOT / "core" / "gateway" / "gateway.py").read_text(),
        "russian": "Привет! Объясни, пожалуйста, что такое декораторы в Python. " * 10,
        "japanese": "Pythonのリストとタプルの違いを教えてください。" * 10,
        "emoji": "🎉🔥😂👍🏽 lol " * 20,
    }
    result: dict[str, Any] = {}
    for encoding in ("cl100k_base", "o200k_base"):
        tokenizer = bpe_openai.get_encoding(encoding)
        result[encoding] = {name: round(estimate_tokens(text) / len(tokenizer.encode(text)), 2)
                            for name, text in samples.items()}
    return {"estimate_over_actual": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per variant")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--tokens", action="store_true", help="compare with bpe-openai counts")
    args = parser.parse_args()
    process, base_url = _start_fake()
    try:
        figures: dict[str, Any] = {
            "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
            "streaming": asyncio.run(_compare(base_url, args.calls, stream=True)),
            "non_streaming": asyncio.run(_compare(base_url, args.calls, stream=False)),
            "offline_provider": asyncio.run(_offline(args.calls)),
            "estimate_tokens": _estimator_speed(),
        }
        if args.tokens:
            figures["token_accuracy"] = _token_accuracy()
    finally:
        process.terminate()
        process.wait()
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
