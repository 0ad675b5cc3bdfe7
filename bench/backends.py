"""Per-frame latency and peak memory of DepthAnythingV2 ViT-S on each runtime.

    python bench/backends.py                 # torch and onnx-cpu at 350² and 518², qnn at 350²
    python bench/backends.py --frames 20 --qnn-sizes 350 518

Random weights (no checkpoints offline; latency does not depend on the values). Each
(runtime, size) runs in its own process so that peak RSS is its own; the QNN row is the HTP
*emulator* of the Linux x86-64 wheel (one frame), not a Snapdragon.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(runtime: str, size: int, frames: int, cache: Path) -> dict:
    from edgedepth.api.stages import BuildContext
    from edgedepth.engine.registry import load_registry
    from edgedepth.engine.stats import peak_rss_mb

    options = {"random_weights": True, "encoder": "vits", "runtime": runtime}
    started = time.perf_counter()
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        options,
        BuildContext(None, "file", cache, input_size=(size, size)),
    )
    setup = time.perf_counter() - started
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    backend.infer(image)  # warm-up (allocations, thread pools)
    timings = []
    for _ in range(frames):
        started = time.perf_counter()
        backend.infer(image)
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "runtime": runtime,
        "size": size,
        "frames": frames,
        "setup_s": round(setup, 2),
        "p50_ms": round(statistics.median(timings), 1),
        "min_ms": round(min(timings), 1),
        "peak_rss_mb": peak_rss_mb(),  # None on Windows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[350, 518])
    parser.add_argument("--qnn-sizes", type=int, nargs="*", default=[350])
    parser.add_argument("--one", nargs=2, metavar=("RUNTIME", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.gettempdir()) / "edgedepth-bench-cache"
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.frames, cache)))
        return
    jobs = [(runtime, size) for size in args.sizes for runtime in ("torch", "onnx-cpu")]
    jobs += [("qnn", size) for size in args.qnn_sizes]
    print(
        f"# {platform.processor() or platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()}; ViT-S random weights; frames per row: {args.frames} "
        "(qnn: 1, emulator)"
    )
    print(
        f"{'runtime':10} {'size':>5} {'setup s':>8} {'p50 ms':>8} {'min ms':>8} {'peak RSS MB':>12}"
    )
    rows = []
    for runtime, size in jobs:
        frames = 1 if runtime == "qnn" else args.frames
        command = [
            sys.executable,
            __file__,
            "--one",
            runtime,
            str(size),
            "--frames",
            str(frames),
            "--cache",
            str(cache),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{runtime:10} {size:>5} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{runtime:10} {size:>5} {row['setup_s']:>8} {row['p50_ms']:>8} {row['min_ms']:>8} "
            f"{row['peak_rss_mb']:>12}",
            flush=True,
        )
    for size in args.sizes:
        by_runtime = {row["runtime"]: row for row in rows if row["size"] == size}
        if {"torch", "onnx-cpu"} <= by_runtime.keys():
            speedup = by_runtime["torch"]["p50_ms"] / by_runtime["onnx-cpu"]["p50_ms"]
            print(f"onnx-cpu vs torch at {size}²: {speedup:.2f}× (goal ≥ 1.25×)")


if __name__ == "__main__":
    main()
