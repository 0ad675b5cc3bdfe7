"""Camera frames in the layouts Windows hands them over (a ``SoftwareBitmap``'s planes) to RGB.

NV12 (a Y plane, then interleaved U/V at half resolution) and YUY2 (packed Y0 U Y1 V) are what
cameras deliver; BGRA8 what Media Foundation converts anything else to. Each plane starts at an
offset and may have a stride wider than its pixels (``BitmapPlaneDescription``). YUV goes through
FFmpeg's swscale (PyAV) with the frame's colour matrix and range: Media Foundation's default for
a camera that does not say is BT.601 below 720 lines and BT.709 from 720 up, limited range
(16-235), as ``MF_MT_YUV_MATRIX`` documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: What :func:`to_rgb` converts, by the names Windows gives them (``BitmapPixelFormat``).
PIXEL_FORMATS = ("NV12", "YUY2", "BGRA8")


@dataclass(frozen=True)
class Plane:
    """Where a plane's rows are in the frame's buffer (``BitmapPlaneDescription``)."""

    start: int
    stride: int


def default_matrix(height: int) -> Literal["ITU601", "ITU709"]:
    """Media Foundation's colour matrix for a frame that does not name one."""
    return "ITU709" if height >= 720 else "ITU601"


def _rows(buffer: np.ndarray, plane: Plane, rows: int, row_bytes: int) -> np.ndarray:
    """``rows`` rows of ``row_bytes`` from a plane, without the stride's padding."""
    end = plane.start + plane.stride * (rows - 1) + row_bytes
    if plane.stride < row_bytes or end > buffer.size:
        raise ValueError(
            f"a plane of {rows} rows x {row_bytes} bytes at {plane.start} (stride {plane.stride}) "
            f"does not fit a {buffer.size}-byte frame"
        )
    whole = buffer[plane.start : plane.start + plane.stride * rows]
    if whole.size < plane.stride * rows:  # the last row may end without its padding
        whole = np.concatenate([whole, np.zeros(plane.stride * rows - whole.size, np.uint8)])
    return whole.reshape(rows, plane.stride)[:, :row_bytes]


def to_rgb(
    data: bytes | bytearray | memoryview | np.ndarray,
    pixel_format: str,
    width: int,
    height: int,
    planes: list[Plane],
    matrix: str | None = None,
    full_range: bool = False,
) -> np.ndarray:
    """The frame as an (height, width, 3) uint8 RGB array. ``matrix``: ``ITU601`` or
    ``ITU709`` (default: :func:`default_matrix`); ``full_range``: 0-255 luma instead of
    16-235."""
    import av
    from av.video.reformatter import VideoReformatter

    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.ravel()
    name = pixel_format.upper()
    if name == "BGRA8":
        bgra = _rows(buffer, planes[0], height, 4 * width).reshape(height, width, 4)
        return np.ascontiguousarray(bgra[..., 2::-1])
    if name == "NV12":
        if len(planes) == 1:  # one plane description: U/V follow the Y rows directly
            planes = [
                planes[0],
                Plane(planes[0].start + planes[0].stride * height, planes[0].stride),
            ]
        luma = _rows(buffer, planes[0], height, width)
        chroma = _rows(buffer, planes[1], height // 2, width)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="nv12")
    elif name == "YUY2":
        packed = _rows(buffer, planes[0], height, 2 * width).reshape(height, width, 2)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(packed), format="yuyv422")
    else:
        raise ValueError(f"pixel format {pixel_format}: not one of {', '.join(PIXEL_FORMATS)}")
    rgb = VideoReformatter().reformat(
        frame,
        format="rgb24",
        src_colorspace=matrix or default_matrix(height),
        src_color_range="JPEG" if full_range else "MPEG",
    )
    return rgb.to_ndarray()
