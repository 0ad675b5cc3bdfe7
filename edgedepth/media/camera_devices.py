"""What a camera is and offers, as every capture API (DirectShow, V4L2, AVFoundation through
PyAV; Media Foundation through WinRT) describes it: :mod:`edgedepth.media.cameras` lists and opens
them, :mod:`edgedepth.media.mediafoundation` lists Windows' own."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CameraFormat:
    """One way a camera can deliver frames."""

    width: int
    height: int
    fps: float | None
    #: NV12, YUY2, MJPG (Media Foundation's subtypes); yuyv422, mjpeg (FFmpeg's names).
    pixel_format: str

    def __str__(self) -> str:
        rate = f" {self.fps:g} fps" if self.fps else ""
        return f"{self.width}x{self.height}{rate} {self.pixel_format}"


@dataclass(frozen=True)
class CameraDevice:
    """One video capture device, as one API sees it."""

    #: Position among this API's cameras (what ``device: N`` in a config means).
    index: int
    #: The name people see ("Integrated Camera").
    name: str
    #: What the API opens: Media Foundation's source group id, the DirectShow unique name,
    #: /dev/videoN, the AVFoundation index.
    open_name: str
    api: str = "dshow"
    formats: tuple[CameraFormat, ...] = ()

    def url(self, input_format: str) -> str:
        """The string to give ``av.open`` for this device."""
        return f"video={self.open_name}" if input_format == "dshow" else self.open_name

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "formats": [asdict(f) for f in self.formats]}
