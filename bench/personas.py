"""Persona loading speed: validating many files, and a file write until its new version serves.

    python bench/personas.py [--files 500] [--runs 7] [--writes 15] [--json]

Files are copies of the shipped examples (ada, narrator, terse) under new ids, loaded
with the repository's config.yaml defaults. Each figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.config import load_config
from core.personas.defaults import defaults_from_config, known_providers_from_config
from core.personas.loader import load_personas
from core.personas.registry import PersonaRegistry, RegistryChange
from core.personas.watcher import PersonaWatcher

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("ada", "narrator", "terse")


def _make_personas(directory: Path, count: int) -> None:
    sources = [(REPO / "personas" / f"{name}.yaml").read_text(encoding="utf-8")
               for name in EXAMPLES]
    for i in range(count):
        text = re.sub(r"^id: .*$", f"id: p{i:04d}", sources[i % len(sources)], count=1,
                      flags=re.MULTILINE)
        (directory / f"p{i:04d}.yaml").write_text(text, encoding="utf-8")


def bench_validate(directory: Path, runs: int) -> dict[str, float]:
    config = load_config(REPO / "config.yaml")
    defaults, providers = defaults_from_config(config), known_providers_from_config(config)
    timings, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        loaded = load_personas(directory, defaults=defaults, known_providers=providers)
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert not loaded.problems, loaded.problems[:3]
    count = len(loaded.personas)
    # CPU time shows the work itself; wall time adds whatever else the machine runs.
    return {"files": count, "median_s": statistics.median(timings), "min_s": min(timings),
            "cpu_median_s": statistics.median(cpu),
            "per_file_ms": statistics.median(timings) / count * 1000}


def bench_cli(directory: Path, runs: int) -> dict[str, float]:
    """``personae personas validate DIR``: a whole process, start-up included."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "personae"), "--config", str(REPO / "config.yaml"),
             "personas", "validate", str(directory)],
            check=True, capture_output=True,
        )
        timings.append(time.perf_counter() - start)
    return {"median_s": statistics.median(timings), "min_s": min(timings)}


async def bench_reload(directory: Path, writes: int) -> dict[str, float]:
    config = load_config(REPO / "config.yaml")
    registry = PersonaRegistry()
    changed = asyncio.Event()

    def on_reloaded(change: RegistryChange) -> None:
        changed.set()

    watcher = PersonaWatcher(
        directory, registry, defaults=defaults_from_config(config),
        known_providers=known_providers_from_config(config), on_problems=lambda p: None,
        on_reloaded=on_reloaded,
    )
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.ready.wait(), 60)
    target = directory / "p0000.yaml"
    original = target.read_text(encoding="utf-8")
    latencies = []
    try:
        for i in range(writes):
            name = f"Renamed {i}"
            text = re.sub(r"^name: .*$", f"name: {name}", original, count=1, flags=re.MULTILINE)
            start = time.perf_counter()
            target.write_text(text, encoding="utf-8")
            while registry.get("p0000").name != name:
                changed.clear()
                await asyncio.wait_for(changed.wait(), 10)
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)  # let the watcher settle between writes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    latencies.sort()
    return {"files": len(registry), "writes": writes,
            "median_ms": statistics.median(latencies) * 1000,
            "p90_ms": latencies[int(len(latencies) * 0.9) - 1] * 1000,
            "max_ms": latencies[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--writes", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as big, tempfile.TemporaryDirectory() as small:
        _make_personas(Path(big), args.files)
        _make_personas(Path(small), len(EXAMPLES))
        results["validate"] = bench_validate(Path(big), args.runs)
        results["validate_cli"] = bench_cli(Path(big), max(3, args.runs // 2))
        results["reload_small_dir"] = asyncio.run(bench_reload(Path(small), args.writes))
        results["reload_big_dir"] = asyncio.run(bench_reload(Path(big), args.writes))
    if args.json:
        print(json.dumps(results))
        return
    v, c = results["validate"], results["validate_cli"]
    print(f"validate {v['files']} files: median {v['median_s']:.3f} s (min {v['min_s']:.3f} s, "
          f"CPU {v['cpu_median_s']:.3f} s, {v['per_file_ms']:.2f} ms/file); goal <= 1 s")
    print(f"personae personas validate (whole process): median {c['median_s']:.3f} s")
    for key in ("reload_small_dir", "reload_big_dir"):
        r = results[key]
        print(f"write -> new version serving, {r['files']} files in the directory: median "
              f"{r['median_ms']:.0f} ms, p90 {r['p90_ms']:.0f} ms, max {r['max_ms']:.0f} ms "
              f"({r['writes']} writes); goal <= 200 ms")


if __name__ == "__main__":
    main()
