"""Point clouds from metric depth: each pixel back-projected through the camera's pinhole
intrinsics, as ROS 2's ``depth_image_proc`` (``point_cloud_xyz`` / ``point_cloud_xyzrgb``) and
the official DepthAnythingV2 ``depth_to_pointcloud.py`` make them, in two packings:

- organized, as ``sensor_msgs/msg/PointCloud2`` holds it (:class:`PointCloud2Packer`): height ×
  width points in pixel order, NaN where the depth is invalid; ``x y z`` float32 at byte offsets
  0, 4, 8 and a point step of 16, or with ``rgb`` (float32 at 16: bytes b, g, r, 0) a point step
  of 32 — the layout of ``PointCloud2Modifier::setPointCloud2FieldsByString(…, "xyz", "rgb")``
  in common_interfaces, which depth_image_proc uses;
- the valid points only, as a binary little-endian PLY file (:func:`ply_bytes`): ``x y z``
  float32 metres and ``red green blue`` uchar per vertex.

Camera frame (REP-103 optical frame, as depth_image_proc): x right, y down, z forward, metres:
``x = (u − cx) · z / fx``, ``y = (v − cy) · z / fy`` for the pixel of column u and row v.
A depth is valid when it is finite and positive (REP-117: NaN, ±inf and 0 are no measurement).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgedepth.api.errors import ConfigError, EdgedepthError
from edgedepth.api.frame import DepthKind, Frame, Intrinsics
from edgedepth.api.stages import BuildContext

#: ``sensor_msgs/msg/PointField`` datatype of float32.
FLOAT32 = 7


@dataclass(frozen=True)
class PointField:
    """One field of a point (``sensor_msgs/msg/PointField``)."""

    name: str
    offset: int
    datatype: int = FLOAT32
    count: int = 1


#: depth_image_proc's point_cloud_xyz: x y z and 4 bytes of padding.
XYZ_FIELDS = (PointField("x", 0), PointField("y", 4), PointField("z", 8))
XYZ_POINT_STEP = 16
#: point_cloud_xyzrgb: then rgb, a float32 whose bytes are b, g, r, 0 (little endian), and 12
#: bytes of padding.
XYZRGB_FIELDS = (*XYZ_FIELDS, PointField("rgb", 16))
XYZRGB_POINT_STEP = 32
_RGB_OFFSET = 16


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Where metric depth is a measurement: finite and positive."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


@lru_cache(maxsize=8)
def _ray_factors(height: int, width: int, camera: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(u − cx) / fx per column and (v − cy) / fy per row, float32 (as depth_image_proc)."""
    columns = (np.arange(width, dtype=np.float32) - np.float32(camera.cx)) * np.float32(
        1.0 / camera.fx
    )
    rows = (np.arange(height, dtype=np.float32) - np.float32(camera.cy)) * np.float32(
        1.0 / camera.fy
    )
    return columns, rows[:, np.newaxis]


def backproject(depth: np.ndarray, camera: Intrinsics, out: np.ndarray | None = None) -> np.ndarray:
    """H×W metric depth → H×W×3 float32 points (x, y, z) in metres, NaN where the depth is
    not valid. ``camera``: the intrinsics at the depth's size. ``out``: an H×W×C float32 array
    (C ≥ 3) whose first three channels receive the points (a packing buffer)."""
    depth = np.asarray(depth, dtype=np.float32)
    height, width = depth.shape
    columns, rows = _ray_factors(height, width, camera)
    z = np.where(valid_depth(depth), depth, np.float32(np.nan))
    if out is None:
        out = np.empty((height, width, 3), dtype=np.float32)
    np.multiply(z, columns, out=out[..., 0])
    np.multiply(z, rows, out=out[..., 1])
    out[..., 2] = z
    return out[..., :3]


def depth_intrinsics(
    camera: Intrinsics, image_size: tuple[int, int], depth: np.ndarray
) -> Intrinsics:
    """The intrinsics of a depth map computed for an image of ``image_size`` (h, w): the same,
    or scaled when the depth has another size (``preprocess.restore_size: false``)."""
    return camera.resized(image_size, (int(depth.shape[0]), int(depth.shape[1])))


def colours_at(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The RGB image at ``size`` (h, w): itself, or the pixel under each centre (nearest)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    rows = ((np.arange(height) + 0.5) * image.shape[0] / height).astype(np.intp)
    columns = ((np.arange(width) + 0.5) * image.shape[1] / width).astype(np.intp)
    return image[rows[:, np.newaxis], columns]


class PointCloud2Packer:
    """Packs the organized clouds of a stream of frames as PointCloud2 holds them, into one
    buffer kept for the next frame of the same size: a fresh zeroed 10 MB buffer for each
    640×480 xyzrgb frame cost more in page faults than the packing (``bench/pointcloud.py``).
    One per thread (each sink has its own)."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def __call__(
        self, depth: np.ndarray, camera: Intrinsics, rgb: np.ndarray | None = None
    ) -> tuple[tuple[PointField, ...], int, bytes]:
        """(fields, point_step, data) of ``depth``'s cloud, ``data`` being height rows of width
        points (row_step = width × point_step), little endian. ``rgb``: the H×W×3 uint8
        colours of the points (the xyzrgb layout), or None (xyz)."""
        height, width = depth.shape
        step = XYZ_POINT_STEP if rgb is None else XYZRGB_POINT_STEP
        shape = (height, width, step // 4)
        if self._buffer is None or self._buffer.shape != shape:
            # Padding is zero, as PointCloud2Modifier's resize leaves it; every frame rewrites
            # x, y, z and the colour bytes, never the padding.
            self._buffer = np.zeros(shape, dtype=np.float32)
        buffer = self._buffer
        backproject(depth, camera, out=buffer)
        if rgb is None:
            return XYZ_FIELDS, step, buffer.tobytes()
        # The rgb float's bits are 0x00RRGGBB: its little-endian bytes are b, g, r, 0.
        colour = buffer.view(np.uint8).reshape(height, width, step)
        for channel in range(3):  # one byte plane at a time: faster than a reversed 3-byte copy
            colour[..., _RGB_OFFSET + 2 - channel] = rgb[..., channel]
        return XYZRGB_FIELDS, step, buffer.tobytes()


def unpack_pointcloud2(
    data: bytes, height: int, width: int, fields: dict[str, int], point_step: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The points of a little-endian PointCloud2: (H×W×3 float32 x y z, H×W×3 uint8 r g b or
    None). ``fields``: name → byte offset of the float32 fields (x, y, z required; rgb read
    when present). ValueError when the bytes do not hold that many points."""
    if point_step < 12 or len(data) < height * width * point_step:
        raise ValueError(
            f"{len(data)} bytes do not hold {height}×{width} points of {point_step} bytes"
        )
    raw = np.frombuffer(data, dtype=np.uint8, count=height * width * point_step)
    points = raw.reshape(height * width, point_step)

    def float_field(name: str) -> np.ndarray:
        offset = fields[name]
        if not 0 <= offset <= point_step - 4:
            raise ValueError(f"field {name} at byte {offset} of a {point_step}-byte point")
        return points[:, offset : offset + 4].copy().view("<f4").reshape(height, width)

    xyz = np.stack([float_field(axis) for axis in "xyz"], axis=-1)
    rgb = None
    if "rgb" in fields:
        float_field("rgb")  # in bounds
        offset = fields["rgb"]
        rgb = points[:, offset : offset + 3][:, ::-1].reshape(height, width, 3).copy()
    return xyz, rgb


@dataclass(frozen=True)
class CloudSummary:
    """What a point cloud holds, in a line: valid points and their bounds (metres)."""

    valid: int
    total: int
    low: tuple[float, float, float] | None
    high: tuple[float, float, float] | None

    @classmethod
    def of(cls, xyz: np.ndarray) -> CloudSummary:
        """Of N×3 or H×W×3 points (NaN: no point)."""
        flat = xyz.reshape(-1, 3)
        finite = flat[np.isfinite(flat).all(axis=1)]
        if not len(finite):
            return cls(0, len(flat), None, None)
        low, high = finite.min(axis=0), finite.max(axis=0)
        return cls(len(finite), len(flat), tuple(map(float, low)), tuple(map(float, high)))

    def __str__(self) -> str:
        if self.low is None or self.high is None:
            return f"0/{self.total} valid points"
        bounds = " ".join(
            f"{axis}={low:.2f}..{high:.2f}"
            for axis, low, high in zip("xyz", self.low, self.high, strict=True)
        )
        return f"{self.valid}/{self.total} valid points {bounds} m"


# --- PLY ----------------------------------------------------------------------------------------

PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)


def ply_bytes(depth: np.ndarray, camera: Intrinsics, rgb: np.ndarray, comment: str = "") -> bytes:
    """A binary little-endian PLY of the valid points of ``depth`` (x, y, z float32 metres;
    red, green, blue uchar from ``rgb``, H×W×3 uint8 at the depth's size), in pixel order."""
    depth = np.asarray(depth, dtype=np.float32)
    keep = np.flatnonzero(valid_depth(depth))
    # Packed vertices of 15 bytes: x, y, z as float32 bytes, then the colour bytes.
    vertices = np.empty((len(keep), PLY_VERTEX.itemsize), dtype=np.uint8)
    xyz = backproject(depth, camera).reshape(-1, 3)[keep]
    vertices[:, :12] = xyz.view(np.uint8).reshape(len(keep), 12)
    vertices[:, 12:] = rgb.reshape(-1, 3)[keep]
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {line}" for line in comment.splitlines() if line]
    lines += [f"element vertex {len(keep)}"]
    lines += [f"property float {axis}" for axis in "xyz"]
    lines += [f"property uchar {channel}" for channel in ("red", "green", "blue")]
    lines += ["end_header", ""]
    return "\n".join(lines).encode("ascii") + vertices.tobytes()


# --- what a sink needs ---------------------------------------------------------------------------


def check_points(
    context: BuildContext | None,
    given: Intrinsics | None,
    horizontal_fov: float | None,
    key: str = "points",
) -> None:
    """Before the run (a sink's build and ``edgedepth check``): one-line errors naming the
    option ``key`` when the pipeline's depth is relative (it has no unit, so no points) or no
    intrinsics can be had (the sink's, the source's or a field of view)."""
    if context is None:
        return
    kind = context.depth_kind
    if kind is not None and kind is not DepthKind.METRIC_METERS:
        raise ConfigError(
            f"{key}: point clouds need metric depth, and this pipeline's depth is {kind.value} "
            f"(no unit): use a metric backend (e.g. dav2-metric), or leave out {key}"
        )
    source = context.source.intrinsics if context.source is not None else None
    if given is None and horizontal_fov is None and source is None:
        raise ConfigError(
            f"{key}: point clouds need the camera's intrinsics, and the source gives none: set "
            "intrinsics: {fx, fy, cx, cy} (pixels of the captured frames) or horizontal_fov: "
            "DEGREES"
        )


def frame_intrinsics(
    frame: Frame, given: Intrinsics | None = None, horizontal_fov: float | None = None
) -> Intrinsics | None:
    """The intrinsics of the frame's image: ``given`` (a sink's option), else the frame's own
    (the source's), else a centred camera of ``horizontal_fov`` degrees, else None."""
    if given is not None:
        return given
    if frame.intrinsics is not None:
        return frame.intrinsics
    if horizontal_fov is not None:
        return Intrinsics.from_horizontal_fov(horizontal_fov, frame.width, frame.height)
    return None


def frame_points_check(frame: Frame, key: str) -> np.ndarray:
    """The frame's depth, checked to be metric (one line naming ``key`` otherwise)."""
    if frame.depth is None or frame.depth_kind is not DepthKind.METRIC_METERS:
        kind = frame.depth_kind.value if frame.depth_kind else "no depth"
        raise EdgedepthError(f"{key}: point clouds need metric depth; frame {frame.index}: {kind}")
    return frame.depth
