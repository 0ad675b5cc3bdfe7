"""CPU a sink spends on one 640×480 frame, each measured alone (process CPU time, so encoder
threads count). Goals: colourise ≤ 1 ms; mp4 + lossless + npy ≤ 10 ms.

    python bench/sinks.py [--frames 60]

Two kinds of depth, because a lossless coder's cost depends on the content: the output of ViT-S
with random weights at 350² brought back to 640×480 (noisy, what bench/dav2_claims.py
records; the worst case) and the synthetic scene's exact metric depth (smooth surfaces and
sharp edges, like a trained model's output). Sinks are built through the registry with the
options a config would give them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgedepth.api.errors import ConfigError
from edgedepth.api.frame import DepthKind, Frame
from edgedepth.api.stages import BuildContext
from edgedepth.engine.registry import load_registry
from edgedepth.media.colorize import colorize
from edgedepth.media.imageops import resize, resize_depth
from edgedepth.media.synthetic_scene import SyntheticScene

CACHE = Path(tempfile.gettempdir()) / "edgedepth-bench-cache"


def depth_maps(count: int) -> dict[str, tuple[DepthKind, list[np.ndarray], list[np.ndarray]]]:
    """{name: (kind, images, depth maps)}: random-weight ViT-S output and the scene's depth."""
    scene = SyntheticScene(seed=0, width=640, height=480, fps=30.0, motion="orbit")
    rendered = [scene.render(index) for index in range(count)]
    images = [image for image, _ in rendered]
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        {"random_weights": True, "encoder": "vits", "runtime": "onnx-cpu"},
        BuildContext(None, "file", CACHE, input_size=(350, 350)),
    )
    distinct = min(count, 8)  # the model is slow: a few maps, repeated
    model_depth = [
        resize_depth(
            backend.infer(resize(image.astype(np.float32), (350, 350), "bilinear")), (480, 640)
        )
        for image in images[:distinct]
    ]
    return {
        "ViT-S random weights": (
            DepthKind.RELATIVE_DISPARITY,
            images,
            [model_depth[i % distinct] for i in range(count)],
        ),
        "scene (smooth, metric)": (DepthKind.METRIC_METERS, images, [d for _, d in rendered]),
    }


def has_nut() -> bool:
    """Whether this version writes .nut lossless recordings (for before/after runs)."""
    try:
        from edgedepth.media.recording import LOSSLESS_FORMATS
    except ImportError:
        return False
    return ".nut" in LOSSLESS_FORMATS


def cpu_ms(step, frames: int) -> float:
    """Median process CPU milliseconds per call of ``step(index)`` (after one warm-up call)."""
    step(0)
    times = []
    for index in range(1, frames):
        started = time.process_time()
        step(index)
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def colourise_ms(depths, kind, frames: int, channels: int) -> float | None:
    low, high = float(np.percentile(depths[0], 2)), float(np.percentile(depths[0], 98))
    extra = () if channels == 3 else (channels,)
    try:
        return cpu_ms(lambda i: colorize(depths[i], kind, low, high, "turbo", *extra), frames)
    except TypeError:
        return None  # a version without RGBA


def sink_cpu(sink_type: str, options: dict, kind, images, depths, frames: int) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        context = BuildContext(work / "bench.yaml", "file", CACHE, depth_range=(0.0, 20.0))
        files = {
            key: str(work / options[key]) for key in ("path", "lossless", "dir") if key in options
        }
        options = {**options, **files}
        try:
            sink = load_registry().build("sinks", sink_type, options, context)
        except ConfigError:
            return None  # an option this version does not have

        def write(index: int) -> None:
            frame = Frame(index, index / 30, images[index], time.perf_counter())
            frame.depth, frame.depth_kind = depths[index], kind
            sink.write(frame)

        try:
            return cpu_ms(write, frames)
        finally:
            getattr(sink, "close", lambda: None)()  # close() is optional for a sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for name, (kind, images, depths) in depth_maps(args.frames).items():
        print(f"\n{name}, 640×480, {args.frames} frames; CPU ms per frame (median):")
        rows = {
            "colourise (RGB)": colourise_ms(depths, kind, args.frames, 3),
            "colourise (RGBA, what the mp4 takes)": colourise_ms(depths, kind, args.frames, 4),
            "video mp4 (depth: colourise + x264 default)": sink_cpu(
                "video", {"path": "d.mp4"}, kind, images, depths, args.frames
            ),
            "video lossless .mkv (FFV1)": sink_cpu(
                "video", {"lossless": "d.mkv"}, kind, images, depths, args.frames
            ),
            "video lossless .nut (FFVHuff)": sink_cpu(
                "video", {"lossless": "d.nut"}, kind, images, depths, args.frames
            )
            if has_nut()
            else None,
            "npy": sink_cpu("npy", {"dir": "npy"}, kind, images, depths, args.frames),
        }
        for what, value in rows.items():
            print(f"  {what:46} {'n/a' if value is None else f'{value:6.2f}'}")
        mp4, npy = rows["video mp4 (depth: colourise + x264 default)"], rows["npy"]
        for lossless in ("video lossless .mkv (FFV1)", "video lossless .nut (FFVHuff)"):
            if None not in (mp4, npy, rows[lossless]):
                total = mp4 + npy + rows[lossless]  # type: ignore[operator]
                print(f"  total mp4 + {lossless.split()[2]} + npy: {total:6.2f} ms (goal ≤ 10)")


if __name__ == "__main__":
    main()
