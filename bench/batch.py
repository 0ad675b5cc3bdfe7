"""Batch throughput: inputs per minute for one config over a library of short videos, run

- as a shell loop of ``edgedepth run``, one process per input (the model loaded for each);
- as ``edgedepth batch`` on the local pool (the model loaded once per worker process), with its
  default size (cores ÷ backend threads) and with two single-threaded workers;
- as ``edgedepth batch --scheduler`` on a Dask cluster of two single-threaded workers on this
  machine (scheduler and workers started here with the ``dask`` command line, on 127.0.0.1, and
  left running between rounds, as a user's cluster is).

The config: DepthAnythingV2 ViT-S (random weights; speed does not depend on them) on ONNX Runtime
CPU at a fixed input size, an mp4 and .npy files per input. The graph is exported once into a
cache of the benchmark's own before the rounds. Rounds are interleaved (loop, pool, pool of two,
Dask, then again): on a shared machine, compare the ratios of a round.

    python bench/batch.py [--inputs 8] [--frames 10] [--size 252] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from pipeline_overhead import render_video  # bench/ is this script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: its tests/
from tests.dask_cluster import dask_cluster


def render_library(folder: Path, inputs: int, frames: int) -> list[Path]:
    """``inputs`` clips of 320×240, each of another synthetic scene."""
    folder.mkdir(parents=True)
    clips = [folder / f"clip{seed:02d}.mp4" for seed in range(inputs)]
    for seed, clip in enumerate(clips):
        render_video(clip, frames, 320, 240, seed)
    return clips


def edgedepth(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgedepth", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"edgedepth {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def shell_loop(config: Path, clips: list[Path], out: Path) -> None:
    """What a user does without batch: ``for f in clips; do edgedepth run …; done``."""
    for clip in clips:
        folder = out / clip.stem
        folder.mkdir(parents=True)
        edgedepth(
            "run", "--config", str(config),
            "--set", f"source={json.dumps({'type': 'video', 'path': str(clip)})}",
            "--set", f"sinks[0].path={folder / 'depth.mp4'}",
            "--set", f"sinks[1].dir={folder / 'npy'}",
            "--set", "runtime.summary=false",
        )  # fmt: skip


def setup_times(out: Path) -> str:
    """From ``batch.json``: how often the model was loaded, and each input's setup (opening it,
    and loading the model when it was) with and without a load."""
    entries = json.loads((out / "batch.json").read_text())["inputs"]
    loaded = [e["setup_seconds"] for e in entries if e["backend_built"]]
    reused = [e["setup_seconds"] for e in entries if not e["backend_built"]]
    runs = [e["seconds"] - e["setup_seconds"] for e in entries]
    return (
        f"model loaded {len(loaded)}×: setup {mean(loaded):.2f} s with the load, "
        f"{mean(reused):.2f} s without; {mean(runs):.2f} s a run"
    )


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def interleaved_rounds(
    config: Path, clips: list[Path], work: Path, scheduler: str, rounds: int
) -> dict[str, list[float]]:
    """Seconds of each way to run the library, round after round."""
    one_thread = ("--set", "backend.threads=1")
    variants = {
        "shell loop of `edgedepth run`": None,
        "batch, local pool (default size)": (),
        "batch, local pool of 2 × 1 thread": ("--workers", "2", *one_thread),
        "batch, Dask: 2 local workers × 1 thread": ("--scheduler", scheduler, *one_thread),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        for index, (name, extra) in enumerate(variants.items()):
            out = work / f"out-{round_index}-{index}"
            started = time.perf_counter()
            if extra is None:
                shell_loop(config, clips, out)
            else:
                edgedepth("batch", "-c", str(config), "-o", str(out), *extra, *map(str, clips))
            seconds[name].append(time.perf_counter() - started)
            print(f"round {round_index + 1}: {name}: {seconds[name][-1]:.1f} s", flush=True)
            if extra is not None:
                print(f"    {setup_times(out)}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10, help="Frames per input.")
    parser.add_argument("--size", type=int, default=252, help="Backend input side (×14).")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgedepth-bench-batch-") as tmp:
        work = Path(tmp)
        os.environ["EDGEDEPTH_CACHE"] = str(work / "cache")  # every process shares the export
        clips = render_library(work / "library", args.inputs, args.frames)
        config = work / "vits.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "preprocess": {
                        "resize": {"policy": "fixed", "width": args.size, "height": args.size}
                    },
                    "backend": {
                        "type": "dav2-relative",
                        "encoder": "vits",
                        "random_weights": True,
                        "runtime": "onnx-cpu",
                    },
                    "sinks": [
                        {"type": "video", "path": "depth.mp4"},
                        {"type": "npy", "dir": "npy"},
                    ],
                }
            )
        )
        print(f"exporting ViT-S at {args.size}² once (not timed)…", flush=True)
        shell_loop(config, clips[:1], work / "warm-up")
        with dask_cluster(work) as (address, _):
            seconds = interleaved_rounds(config, clips, work, address, args.rounds)
    print(
        f"\n{args.inputs} inputs of {args.frames} frames (320×240 → ViT-S {args.size}², onnx-cpu)"
    )
    baseline = seconds["shell loop of `edgedepth run`"]
    for name, times in seconds.items():
        per_minute = [args.inputs * 60 / t for t in times]
        ratios = [base / t for base, t in zip(baseline, times, strict=True)]
        print(
            f"{name:42s} inputs/min "
            + " ".join(f"{value:6.1f}" for value in per_minute)
            + "   × loop "
            + " ".join(f"{ratio:4.2f}" for ratio in ratios)
        )


if __name__ == "__main__":
    main()
