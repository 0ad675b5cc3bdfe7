"""Peak memory of ViT-S at 518 keep-aspect on onnx-cpu. Goal: ≤ 600 MB for the whole run.

    python bench/memory.py [--frames 60] [--repeats 3]

1. ``edgedepth run``: a 640×480 H.264 clip (synthetic scene), keep-aspect 518 (518×686 into the
   network), side-by-side mp4 (the issue's measurement), export cached; peak RSS of the process
   and its wall time, each run its own process.
2. ONNX Runtime's memory settings, backend only (the exported graph, 518×686, 5 frames):
   ORT's defaults (arena + memory pattern), edgedepth's
   (:func:`edgedepth.runtime.sessions.cpu_session`) and the arena off; peak RSS and ms per
   frame, interleaved (A B C A B C …) so they share the machine's load.

ViT-S with random weights (memory does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from pipeline_overhead import render_video

ORT_SETTINGS = {
    "ORT default (arena, pattern)": {"arena": True, "pattern": True},
    "edgedepth (cpu_session)": None,
    "arena off, pattern": {"arena": False, "pattern": True},
}


def measure_session(model: str, settings: dict | None, frames: int) -> dict:
    """Runs in its own process: peak RSS and ms per frame of one session on ``model``."""
    import numpy as np
    import onnxruntime as ort

    from edgedepth.engine.stats import peak_rss_mb
    from edgedepth.runtime.sessions import cpu_session

    if settings is None:
        session = cpu_session(Path(model))
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = settings["arena"]
        options.enable_mem_pattern = settings["pattern"]
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    tensor = session.get_inputs()[0]
    image = np.random.default_rng(0).random(tensor.shape, np.float32) * 255
    session.run(None, {tensor.name: image})
    timings = []
    for _ in range(frames):
        started = time.perf_counter()
        session.run(None, {tensor.name: image})
        timings.append(time.perf_counter() - started)
    return {"ms": statistics.median(timings) * 1000, "peak_mb": peak_rss_mb()}


def run_process(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--session", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.session:
        model, name = args.session
        print(json.dumps(measure_session(model, ORT_SETTINGS[name], 5)))
        return
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; ViT-S random weights, keep-aspect 518 (518×686), onnx-cpu"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        render_video(work / "clip.mp4", args.frames)
        config = {
            "source": {"type": "video", "path": "clip.mp4"},
            "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": 518}},
            "backend": {
                "type": "dav2-relative",
                "encoder": "vits",
                "random_weights": True,
                "runtime": "onnx-cpu",
            },
            "sinks": [
                {
                    "type": "video",
                    "path": "out.mp4",
                    "layout": "side-by-side",
                    "existing": "overwrite",
                }
            ],
            "runtime": {"cache_dir": str(work / "cache"), "progress": False},
        }
        (work / "run.yaml").write_text(yaml.safe_dump(config))
        warm = {**config, "runtime": {**config["runtime"], "max_frames": 1}}
        (work / "warm.yaml").write_text(yaml.safe_dump(warm))
        run = [sys.executable, "-m", "edgedepth", "run", "--config"]
        run_process([*run, "warm.yaml"], work)  # exports the graph
        runs = [run_process([*run, "run.yaml"], work)[:2] for _ in range(args.repeats)]
        walls, peaks = zip(*runs, strict=True)
        print(
            f"1. edgedepth run, {args.frames} frames, side-by-side mp4: peak RSS "
            f"{statistics.median(peaks):.0f} MB (runs: {', '.join(f'{p:.0f}' for p in peaks)}), "
            f"wall {statistics.median(walls):.1f} s; goal ≤ 600 MB"
        )
        (model,) = (work / "cache" / "exports").glob("*/model.onnx")
        rows: dict[str, list[dict]] = {name: [] for name in ORT_SETTINGS}
        for _ in range(args.repeats):
            for name in ORT_SETTINGS:
                command = [sys.executable, __file__, "--session", str(model), name]
                out = run_process(command, work)[2]
                rows[name].append(json.loads(out.strip().splitlines()[-1]))
        print("2. backend only, 518×686, 5 frames, interleaved:")
        for name, results in rows.items():
            times = [result["ms"] for result in results]
            print(
                f"   {name:30} peak {statistics.median(r['peak_mb'] for r in results):5.0f} MB, "
                f"{statistics.median(times):6.0f} ms/frame "
                f"(runs: {', '.join(f'{ms:.0f}' for ms in times)})"
            )


if __name__ == "__main__":
    main()
