"""The official ``run_video.py`` against ``edgedepth run`` (float32 and int8 on onnx-cpu), on the
same clip with the same weights. Goal: ≥ 2.5× the official wall time with float, ≥ 4× with int8.

    python bench/official_loop.py --official ~/src/Depth-Anything-V2 [--frames 60] [--pairs 3]

``--official`` is a local checkout of github.com/DepthAnything/Depth-Anything-V2 (run from there
by this script only; edgedepth never ships its code). The clip: ``--frames`` 640×480 H.264
frames of the synthetic scene. The weights: random ViT-S (biases and norms random too, as in
``bench/official_parity.py``) saved as ``checkpoints/depth_anything_v2_vits.pth``, the file
``run_video.py`` loads; edgedepth reads the same file (``backend.checkpoint``).

- official: ``run_video.py --video-path clip.mp4 --input-size 518 --encoder vits`` (its
  default output: the frame and the coloured depth side by side, an mp4);
- edgedepth: keep-aspect 518 (518×686 into the network), ``dav2-relative`` on onnx-cpu at
  ``precision`` float32 and int8, a side-by-side mp4 sink; the export (and the int8 graph) made
  by a one-frame run first, as on any run after the first.

Each run is its own process; the three run in turn (official, float, int8, then the order
rotates) ``--pairs`` times so they share the machine's load. Printed: wall time and peak RSS of
every run, the medians, and the per-round ratios official / edgedepth with their median.
Where torchvision is not installed the official code gets the same ``Compose`` stand-in as in
``bench/official_parity.py``; its ``matplotlib`` and ``cv2`` must be installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from memory import run_process
from official_parity import check_checkout, official_model
from pipeline_overhead import render_video

from edgedepth.models.dav2.checkpoint import randomize

BENCH = Path(__file__).resolve().parent
#: Runs the official script as ``python run_video.py ARGS`` would, after the Compose stand-in.
OFFICIAL_RUNNER = (
    "import runpy, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
    "from official_parity import provide_compose; provide_compose(); "
    "script = sys.argv[1] + '/run_video.py'; sys.argv = [script, *sys.argv[3:]]; "
    "runpy.run_path(script, run_name='__main__')"
)


def save_weights(official: Path, work: Path) -> Path:
    """Random ViT-S weights in the official layout, where ``run_video.py`` looks for them."""
    model = official_model(official, "relative")
    randomize(model, seed=12, biases=True)
    with torch.no_grad():  # keep the relative head's final ReLU mostly active
        model.depth_head.scratch.output_conv2[2].bias.fill_(1.0)
    checkpoint = work / "checkpoints" / "depth_anything_v2_vits.pth"
    checkpoint.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), checkpoint)
    return checkpoint


def edgedepth_config(work: Path, checkpoint: Path, precision: str) -> Path:
    config = {
        "source": {"type": "video", "path": "clip.mp4"},
        "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": 518}},
        "backend": {
            "type": "dav2-relative",
            "checkpoint": str(checkpoint),
            "runtime": "onnx-cpu",
            "precision": precision,
        },
        "sinks": [
            {
                "type": "video",
                "path": f"{precision}.mp4",
                "layout": "side-by-side",
                "existing": "overwrite",
            }
        ],
        "runtime": {"cache_dir": str(work / "cache"), "progress": False},
    }
    path = work / f"{precision}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True,
                        help="local checkout of DepthAnything/Depth-Anything-V2")  # fmt: skip
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=3, help="rounds of the three runs")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    official = args.official.expanduser().resolve()
    check_checkout(official)
    work = args.work or Path(tempfile.mkdtemp(prefix="edgedepth-official-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    import onnxruntime

    started = time.strftime("%Y-%m-%d %H:%M")
    print(
        f"# {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; load average {os.getloadavg()[0]:.1f} at the start"
    )
    render_video(work / "clip.mp4", args.frames)
    checkpoint = save_weights(official, work)
    official_args = "--video-path clip.mp4 --input-size 518 --encoder vits --outdir official-out"
    commands = {
        "official": [sys.executable, "-c", OFFICIAL_RUNNER, str(official), str(BENCH)]
        + official_args.split()
    }
    for precision in ("float32", "int8"):
        config = edgedepth_config(work, checkpoint, precision)
        first = [sys.executable, "-m", "edgedepth", "run", "--config", str(config)]
        warm = run_process([*first, "--set", "runtime.max_frames=1"], work)
        made = "export + int8 graph" if precision == "int8" else "export"
        print(f"edgedepth {precision}: first run, 1 frame ({made}, once): {warm[0]:.1f} s")
        commands[f"edgedepth {precision}"] = first
    names = list(commands)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_index in range(args.pairs):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            wall, peak, _ = run_process(commands[name], work)
            results[name].append((wall, peak))
            print(f"  round {round_index + 1} {name:18} {wall:7.1f} s  peak {peak:5.0f} MB  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    print(f"\n{args.frames} frames, keep-aspect 518, side-by-side mp4; medians of {args.pairs}:")
    reference = [wall for wall, _ in results["official"]]
    for name in names:
        walls = [wall for wall, _ in results[name]]
        peaks = [peak for _, peak in results[name]]
        ratios = [ref / wall for ref, wall in zip(reference, walls, strict=True)]
        print(
            f"  {name:18} {statistics.median(walls):7.1f} s  "
            f"{args.frames / statistics.median(walls):5.2f} FPS  "
            f"peak {statistics.median(peaks):5.0f} MB  "
            f"official/this {statistics.median(ratios):5.2f}× "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    print(f"goal: float ≥ 2.5×, int8 ≥ 4×; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"(started {started}; work folder {work})")


if __name__ == "__main__":
    main()
