"""The project's DepthAnythingV2 claims, measured on this machine (results go in bench/RESULTS.md).

    python bench/dav2_claims.py efficiency   # 1. end-to-end FPS / backend-only FPS, goal ≥ 0.95
                                             #    (sinks mp4 + lossless .mkv or .nut + npy)
    python bench/dav2_claims.py reference    # 2. vs the reference sequential loop, goal ≥ 1.5×
    python bench/dav2_claims.py lpcvc        # 3. in-graph 350² resize vs host-side resize
    python bench/dav2_claims.py all

ViT-S with random weights (no checkpoint can be downloaded here; speed does not depend on the
values), on a 640×480 H.264 clip rendered from the synthetic scene.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from pipeline_overhead import render_video

from edgedepth.api.stages import BuildContext
from edgedepth.engine.config import load_config
from edgedepth.engine.pipeline import Pipeline
from edgedepth.engine.registry import load_registry

CACHE = Path(tempfile.gettempdir()) / "edgedepth-bench-cache"
VITS = {"type": "dav2-relative", "encoder": "vits", "random_weights": True}


def bench_config(config: Path, frames: int) -> dict:
    """`edgedepth bench --json` of one config (its own process, sinks off)."""
    done = subprocess.run(
        [sys.executable, "-m", "edgedepth", "bench", "--config", str(config), "--frames",
         str(frames), "--json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return next(iter(json.loads(done.stdout).values()))


def run_pipeline(work: Path, config: dict) -> object:
    path = work / "pipeline.yaml"
    path.write_text(
        yaml.safe_dump({**config, "runtime": {"progress": False, "cache_dir": str(CACHE)}})
    )
    loaded = load_config(path)
    registry = load_registry(loaded.config.plugins, loaded.base_dir)
    return Pipeline.from_config(loaded, registry).run().stats


def backend_only_fps(runtime: str, size: tuple[int, int], frames: int, **options) -> float:
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        {"random_weights": True, "encoder": "vits", "runtime": runtime, **options},
        BuildContext(None, "file", CACHE, input_size=size),
    )
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    backend.infer(image)
    started = time.perf_counter()
    for _ in range(frames):
        backend.infer(image)
    return frames / (time.perf_counter() - started)


def efficiency(work: Path, frames: int) -> None:
    """Backend alone, the pipeline with mp4 + lossless .mkv (FFV1) + npy, the same with .nut
    (FFVHuff), the backend alone again: each pipeline against the mean of the two."""
    render_video(work / "clip.mp4", frames)
    backend_frames = min(frames, 100)
    backend_fps = [backend_only_fps("onnx-cpu", (350, 350), backend_frames)]
    pipelines = {}
    for lossless in ("out.mkv", "out.nut"):
        pipelines[lossless] = run_pipeline(
            work,
            {
                "source": {"type": "video", "path": "clip.mp4"},
                "preprocess": {"resize": {"policy": "fixed", "width": 350, "height": 350}},
                "backend": {**VITS, "runtime": "onnx-cpu"},
                "sinks": [
                    {
                        "type": "video",
                        "path": "out.mp4",
                        "lossless": lossless,
                        "existing": "overwrite",
                    },
                    {"type": "npy", "dir": "npy", "existing": "overwrite"},
                ],
            },
        )
    backend_fps.append(backend_only_fps("onnx-cpu", (350, 350), backend_frames))
    backend = sum(backend_fps) / 2
    print(f"1. backend only {backend_fps[0]:.2f} / {backend_fps[1]:.2f} FPS (before / after)")
    for lossless, stats in pipelines.items():
        print(stats.format_table())
        print(
            f"   mp4 + {lossless} + npy: end to end {stats.fps:.2f} FPS (steady "
            f"{stats.steady_fps:.2f}); ratio {stats.fps / backend:.3f} (steady "
            f"{stats.steady_fps / backend:.3f}); goal ≥ 0.95"
        )


def reference_loop(clip: Path, out: Path, frames: int) -> float:
    """The reference script's way (Depth-Anything-V2 run_video.py, from its published behaviour):
    one loop that reads a frame, resizes keep-aspect to a lower bound of 518 (multiple of 14,
    cubic), normalises, runs the torch model, resizes back, min-max colourises and writes."""
    import cv2
    import torch

    from edgedepth.media.colorize import colormap
    from edgedepth.media.imageops import keep_aspect_size
    from edgedepth.models.dav2.checkpoint import random_model
    from edgedepth.models.dav2.network import config_for

    model = random_model(config_for("vits"))
    lut = colormap("spectral_r")[:, ::-1]  # BGR, as the reference writes with OpenCV
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    capture = cv2.VideoCapture(str(clip))
    width, height = (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    writer = cv2.VideoWriter(
        str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width * 2 + 50, height)
    )
    started, count = time.perf_counter(), 0
    while count < frames:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) / 255.0
        size = keep_aspect_size(height, width, 518, 14)
        image = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        image = ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        with torch.no_grad():
            depth = model(torch.from_numpy(image))
            depth = torch.nn.functional.interpolate(
                depth, (height, width), mode="bilinear", align_corners=True
            )
        depth = depth[0, 0].numpy()
        depth = ((depth - depth.min()) / (depth.max() - depth.min()) * 255).astype(np.uint8)
        split = np.full((height, 50, 3), 255, dtype=np.uint8)
        writer.write(cv2.hconcat([frame, split, lut[depth]]))
        count += 1
    writer.release()
    return count / (time.perf_counter() - started)


def reference(work: Path, frames: int) -> None:
    render_video(work / "clip.mp4", frames)
    reference_fps = reference_loop(work / "clip.mp4", work / "reference.mp4", frames)
    print(f"2. reference sequential loop (torch, 518×686): {reference_fps:.2f} FPS")
    for runtime in ("torch", "onnx-cpu"):
        stats = run_pipeline(
            work,
            {
                "source": {"type": "video", "path": "clip.mp4"},
                "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": 518}},
                "backend": {**VITS, "runtime": runtime},
                "sinks": [
                    {
                        "type": "video",
                        "path": "edgedepth.mp4",
                        "layout": "side-by-side",
                        "existing": "overwrite",
                    }
                ],
            },
        )
        print(stats.format_table())
        print(
            f"   edgedepth {runtime} (518×686, same sinks' work): {stats.fps:.2f} FPS → "
            f"{stats.fps / reference_fps:.2f}× the reference; goal ≥ 1.5×"
        )


def lpcvc(work: Path, frames: int) -> None:
    render_video(work / "clip.mp4", frames)
    common = {
        "source": {"type": "video", "path": "clip.mp4"},
        "sinks": [{"type": "npy", "dir": "npy", "existing": "overwrite"}],
        "runtime": {"cache_dir": str(CACHE)},
    }
    in_graph = {"resize_to": [350, 350], "output_size": "input", "invert": True}
    fixed = {"policy": "fixed", "width": 350, "height": 350}
    configs = {
        "in-graph": {**common, "preprocess": {"resize": {"policy": "none"}},
                     "backend": {**VITS, "runtime": "onnx-cpu", "graph": in_graph}},
        "host-side": {**common, "preprocess": {"resize": fixed},
                      "backend": {**VITS, "runtime": "onnx-cpu", "graph": {"invert": True}}},
    }  # fmt: skip
    for name, config in configs.items():
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        stats = bench_config(path, frames)
        host = sum(
            stats["stages"][stage]["p50_ms"]
            for stage in stats["stages"]
            if stage.startswith(("resize", "restore"))
        )
        print(
            f"3. {name:9}: backend p50 {stats['stages']['backend:infer']['p50_ms']:.1f} ms, host "
            f"resize+restore p50 {host:.1f} ms, end-to-end latency p50 "
            f"{stats['latency']['p50_ms']:.1f} ms, {stats['fps']:.2f} FPS"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("claim", choices=["efficiency", "reference", "lpcvc", "all"])
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    print(f"# {platform.machine()} {platform.system()}, Python {platform.python_version()}")
    claims = {"efficiency": efficiency, "reference": reference, "lpcvc": lpcvc}
    for name, claim in claims.items():
        if args.claim in (name, "all"):
            with tempfile.TemporaryDirectory() as tmp:
                claim(Path(tmp), args.frames)


if __name__ == "__main__":
    main()
