"""Point-cloud cost per 640×480 frame (goal ≤ 5 ms for the PointCloud2 packing):

    python bench/pointcloud.py [--frames 30] [--rounds 5]

The synthetic scene's exact metric depth (every pixel valid) with 5 % of its pixels made
invalid (NaN), and its RGB; the synthetic camera's intrinsics. Measured, interleaved in each
round so that a loaded machine slows all alike (median ms per frame over the rounds):

- ``backproject``: the H×W×3 points (NaN where invalid);
- ``pack xyz`` / ``pack xyzrgb``: the organized PointCloud2 data (depth_image_proc's layouts,
  point_step 16 / 32), back-projection included;
- ``message + CDR``: the whole ``sensor_msgs/msg/PointCloud2`` as the mcap and topic sinks
  send it (FrameToMessages, then the CDR encoding);
- ``PLY bytes`` / ``PLY write``: the ply sink's file content, and with its write to a file
  (temporary name, rename) in a temporary folder.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgedepth.api.frame import DepthKind, Frame
from edgedepth.api.outputs import FrameFolder
from edgedepth.media.pointcloud import PointCloud2Packer, backproject, ply_bytes
from edgedepth.media.synthetic_scene import SyntheticScene
from edgedepth.topic.ros2 import POINT_CLOUD2, FrameToMessages, encode_cdr


def frames(count: int) -> list[Frame]:
    """Synthetic 640×480 frames with metric depth, 5 % of it invalid."""
    scene = SyntheticScene(seed=0, width=640, height=480)
    rng = np.random.default_rng(0)
    made = []
    for index in range(count):
        image, depth = scene.render(index)
        depth = depth.copy()
        depth[rng.random(depth.shape) < 0.05] = np.nan
        made.append(
            Frame(index, index / 30, image, time.perf_counter(), depth=depth,
                  depth_kind=DepthKind.METRIC_METERS, intrinsics=scene.intrinsics)
        )  # fmt: skip
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    made = frames(args.frames)
    to_cloud = FrameToMessages(depth=False, camera_info=False, points=True, points_rgb=True)
    with tempfile.TemporaryDirectory() as folder:
        plys = FrameFolder(Path(folder), ".ply", "overwrite", "ply")

        pack_xyz, pack_xyzrgb = PointCloud2Packer(), PointCloud2Packer()  # one per stream

        def cloud_message(frame: Frame) -> None:
            (message,) = to_cloud(frame)
            encode_cdr(POINT_CLOUD2, message.fields)

        def ply(frame: Frame) -> bytes:
            return ply_bytes(frame.depth, frame.intrinsics, frame.image)

        cases: dict[str, Callable[[Frame], object]] = {
            "backproject": lambda f: backproject(f.depth, f.intrinsics),
            "pack xyz": lambda f: pack_xyz(f.depth, f.intrinsics),
            "pack xyzrgb": lambda f: pack_xyzrgb(f.depth, f.intrinsics, f.image),
            "message + CDR (xyzrgb)": cloud_message,
            "PLY bytes": ply,
            "PLY write": lambda f: plys.write(
                f"{f.index:06d}.ply", lambda file: file.write(ply(f))
            ),
        }
        for case in cases.values():  # warm up (caches, first allocations)
            case(made[0])
        medians: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():
                start = time.perf_counter()
                for frame in made:
                    case(frame)
                medians[name].append((time.perf_counter() - start) * 1000 / len(made))
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"{args.frames} frames × {args.rounds} rounds, 640×480, 5 % invalid")  # fmt: skip
    print("| step | ms per frame (median of rounds) | min..max |")
    print("|---|---:|---:|")
    for name, values in medians.items():
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}..{max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
