"""Pipeline overhead: a backend that sleeps a fixed time per frame, on a 300-frame video file
(640×480 H.264) with the npy sink on. If stages overlap properly, end-to-end FPS equals
1 / sleep (the backend is the slowest stage). Target: ratio ≥ 0.97.

    python bench/pipeline_overhead.py [--sleep-ms 30] [--frames 300]
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import yaml

from edgedepth.engine.config import load_config
from edgedepth.engine.pipeline import Pipeline
from edgedepth.engine.registry import load_registry
from edgedepth.media.synthetic_scene import SyntheticScene

SLEEP_BACKEND = Path(__file__).resolve().with_name("sleep_backend.py")


def render_video(
    path: Path, frames: int, width: int = 640, height: int = 480, seed: int = 0
) -> None:
    """An H.264 clip of the synthetic scene (``seed``: another room)."""
    scene = SyntheticScene(seed=seed, width=width, height=height, fps=30.0, motion="orbit")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image, _ = scene.render(index)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep-ms", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        render_video(work / "clip.mp4", args.frames)
        config_path = work / "bench.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "plugins": [str(SLEEP_BACKEND)],
                    "source": {"type": "video", "path": "clip.mp4"},
                    "preprocess": {"resize": {"policy": "fixed", "width": 350, "height": 350}},
                    "backend": {"type": "sleep", "delay_ms": args.sleep_ms},
                    "sinks": [{"type": "npy", "dir": "out", "existing": "overwrite"}],
                    "runtime": {"progress": False},
                }
            )
        )
        loaded = load_config(config_path)
        registry = load_registry(loaded.config.plugins, loaded.base_dir)
        result = Pipeline.from_config(loaded, registry).run()
    stats = result.stats
    ideal_fps = 1000.0 / args.sleep_ms
    print(stats.format_table())
    print(f"frames out          {stats.frames_out} / {args.frames}")
    print(f"ideal FPS (1/sleep) {ideal_fps:.2f}")
    print(f"end-to-end FPS      {stats.fps:.2f} (whole run)   steady {stats.steady_fps:.2f}")
    print(
        f"ratio               {stats.fps / ideal_fps:.3f} (whole run)   "
        f"{stats.steady_fps / ideal_fps:.3f} (steady)   target >= 0.97"
    )


if __name__ == "__main__":
    main()
