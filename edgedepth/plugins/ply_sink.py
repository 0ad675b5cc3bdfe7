"""``ply``: one point cloud per frame, as the official DepthAnythingV2 ``depth_to_pointcloud.py``
makes them: a binary little-endian PLY of the valid pixels of metric depth back-projected
through the camera (x, y, z float32 metres in the camera's optical frame: x right, y down,
z forward; red, green, blue uchar from the frame), read by Open3D, MeshLab, CloudCompare,
Blender and ``plyfile``.

The camera is ``intrinsics`` (pixels of the captured frames), else the source's (the
synthetic source has them), else a centred pinhole of ``horizontal_fov`` degrees; a pipeline
whose depth is relative has no points (one line naming ``ply``, before the run). Pixels with no
measurement (NaN, ±inf, ≤ 0) are left out. Each file is written under a temporary name and
renamed: an interrupted run never leaves half a file. A folder that already holds ``.ply``
files is refused unless ``existing`` says what to do with them (as the ``npy`` sink).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import field_validator

import edgedepth
from edgedepth import BuildContext, EdgedepthError, Frame, OutputDir, SinkOutput
from edgedepth.api.options import CameraIntrinsics, HorizontalFov
from edgedepth.api.outputs import FrameFolder, WritesFiles, existing_files, frame_file_name
from edgedepth.media.pointcloud import (
    check_points,
    colours_at,
    depth_intrinsics,
    frame_intrinsics,
    frame_points_check,
    ply_bytes,
)


class PlyOptions(WritesFiles):
    existing_hint: ClassVar[str] = (
        "set existing: clear (delete them first), existing: overwrite (keep them, replace "
        "files of the same name) or existing: new-name (a new folder)"
    )

    dir: OutputDir
    """Output folder (created if missing)."""
    name: str = "{index:06d}.ply"
    """File name: ``{index}`` (the frame index, required: one file per frame) and optionally
    ``{timestamp}`` (seconds), with Python format specs, e.g. ``cloud_{index:05d}.ply``."""
    intrinsics: CameraIntrinsics | None = None
    """Intrinsics of the captured frames; omitted: the source's, else ``horizontal_fov``."""
    horizontal_fov: HorizontalFov | None = None
    """Degrees: a centred pinhole camera, for sources that report no intrinsics."""
    existing: Literal["refuse", "clear", "overwrite", "new-name"] = "refuse"
    """``.ply`` files already in ``dir``: ``refuse`` (an error, before any work), ``clear``
    (delete them first), ``overwrite`` (keep them; files of the same name are replaced),
    ``new-name`` (write into ``DIR-2``, ``DIR-3``, …)."""

    def occupied(self, field: str, path: Path) -> list[Path]:
        return sorted(path.glob("*.ply")) if path.is_dir() else existing_files(path)

    @field_validator("name")
    @classmethod
    def _one_file_per_frame(cls, name: str) -> str:
        return frame_file_name(name, ".ply")


class PlySink:
    def __init__(self, options: PlyOptions, context: BuildContext | None) -> None:
        self.dir = Path(options.dir)
        self.options = options
        self.intrinsics = options.intrinsics.intrinsics if options.intrinsics else None
        check_points(context, self.intrinsics, options.horizontal_fov, "ply")
        self.folder = FrameFolder(self.dir, ".ply", options.existing, "ply")

    def write(self, frame: Frame) -> None:
        depth = frame_points_check(frame, "ply")
        camera = frame_intrinsics(frame, self.intrinsics, self.options.horizontal_fov)
        if camera is None:
            raise EdgedepthError(f"ply: frame {frame.index} has no camera intrinsics")
        camera = depth_intrinsics(camera, (frame.height, frame.width), depth)
        data = ply_bytes(
            depth,
            camera,
            colours_at(frame.image, depth.shape),
            f"edgedepth {edgedepth.__version__} frame {frame.index} t={frame.timestamp:.6f}s\n"
            f"camera fx={camera.fx:.6g} fy={camera.fy:.6g} cx={camera.cx:.6g} cy={camera.cy:.6g}",
        )
        name = self.options.name.format(index=frame.index, timestamp=frame.timestamp)
        self.folder.write(name, lambda file: file.write(data))

    def outputs(self) -> list[SinkOutput]:
        return [SinkOutput(self.dir, self.folder.written, "one binary PLY point cloud per frame")]


def check_ply(options: PlyOptions, context: BuildContext) -> None:
    """``edgedepth check``: metric depth and intrinsics (nothing is written)."""
    given = options.intrinsics.intrinsics if options.intrinsics else None
    check_points(context, given, options.horizontal_fov, "ply")


@edgedepth.hookimpl
def register_sinks(register: edgedepth.Register) -> None:
    register(
        "ply",
        PlyOptions,
        PlySink,
        description="one binary PLY point cloud per frame (metric depth, RGB)",
        check=check_ply,
    )
