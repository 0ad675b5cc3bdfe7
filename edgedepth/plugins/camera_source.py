"""``camera``: a live camera through PyAV's device inputs (v4l2 on Linux, dshow on Windows,
avfoundation on macOS), or through OpenCV when it is installed and asked for.

``device: 0`` works everywhere without OpenCV: on Windows the index is resolved to the camera's
DirectShow name (``edgedepth doctor`` lists the cameras and their indices)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import av
from pydantic import Field

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext, SourceInfo
from edgedepth.media.cameras import CameraDevice, default_format, dshow_device, list_cameras

#: Asked for when the config gives no size/rate. Nearly every UVC webcam offers 640×480 at 30
#: fps; DepthAnythingV2 works at 350–518 px anyway; and DirectShow's own default is the first
#: format the driver lists, often its largest size at 5–15 fps, which would cap the pipeline.
DEFAULT_SIZE = (640, 480)
DEFAULT_FPS = 30.0


class CameraOptions(StrictModel):
    device: int | str = 0
    """Index (0 → /dev/video0 on Linux, the first DirectShow camera on Windows) or a device string:
    ``/dev/video2``, ``Integrated Camera`` / ``video=Integrated Camera`` (Windows), ``0`` (macOS
    avfoundation)."""
    width: int | None = Field(None, gt=0)
    """Capture width; omitted: 640 (with 480 and 30 fps) if the camera offers it, else its own."""
    height: int | None = Field(None, gt=0)
    """Capture height (with ``width``); omitted: 480 if the camera offers it."""
    fps: float | None = Field(None, gt=0)
    """Frames per second to ask for; omitted: 30 if the camera offers it."""
    api: Literal["auto", "pyav", "opencv"] = "auto"
    """``auto`` uses PyAV; ``opencv`` needs the ``cv`` extra."""
    input_format: str | None = None
    """FFmpeg input format, when the platform default is not right."""


def _device_string(
    device: int | str,
    input_format: str,
    cameras: Callable[[], list[CameraDevice]] = lambda: list_cameras("dshow"),
) -> str:
    """What FFmpeg opens for ``device``: an index becomes /dev/videoN (v4l2), the camera's
    DirectShow name (dshow, listed through FFmpeg) or stays an index (avfoundation)."""
    if isinstance(device, str) and not device.isdigit():
        if input_format == "dshow" and not device.startswith(("video=", "audio=")):
            return f"video={device}"
        return device
    index = int(device)
    if input_format == "v4l2":
        return f"/dev/video{index}"
    if input_format == "dshow":
        return dshow_device(index, cameras())
    return str(index)


class PyAVCamera:
    def __init__(self, options: CameraOptions) -> None:
        input_format = options.input_format or default_format()
        device = _device_string(options.device, input_format)
        if input_format == "v4l2" and not Path(device).exists():
            raise EdgedepthError(f"camera: {device} not found (no such video device)")
        asked = {}
        if options.width and options.height:
            asked["video_size"] = f"{options.width}x{options.height}"
        if options.fps:
            asked["framerate"] = f"{options.fps:g}"
        defaults = {
            "video_size": f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
            "framerate": f"{DEFAULT_FPS:g}",
        }
        # Our default first; if the camera does not offer it, whatever it does by itself.
        attempts = [{**defaults, **asked}]
        if not asked.keys() >= defaults.keys():
            attempts.append(asked)
        for attempt, device_options in enumerate(attempts, 1):
            try:
                self._container = av.open(device, format=input_format, options=device_options)
                break
            except (av.FFmpegError, OSError) as exc:
                if attempt == len(attempts):
                    raise EdgedepthError(
                        f"camera: cannot open {device} ({input_format}): {exc}"
                    ) from None
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.info = SourceInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else options.fps,
            live=True,
            description=f"{input_format}:{device}",
        )

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        for index, decoded in enumerate(self._container.decode(video=0)):
            now = time.perf_counter()
            image = decoded.to_ndarray(format="rgb24")
            yield Frame(index=index, timestamp=now - start, image=image, captured_at=now)

    def close(self) -> None:
        self._container.close()


class OpenCVCamera:
    def __init__(self, options: CameraOptions) -> None:
        try:
            import cv2
        except ImportError:
            raise EdgedepthError(
                'camera: api: opencv needs OpenCV: pip install "edgedepth[cv]"'
            ) from None
        self._cv2 = cv2
        device: Any = int(options.device) if str(options.device).isdigit() else options.device
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise EdgedepthError(f"camera: cannot open device {options.device!r} with OpenCV")
        if options.width and options.height:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, options.width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, options.height)
        if options.fps:
            self._capture.set(cv2.CAP_PROP_FPS, options.fps)
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            raise EdgedepthError(f"camera: device {options.device!r} opened but gives no frames")
        self._first = first
        self.info = SourceInfo(
            width=first.shape[1],
            height=first.shape[0],
            fps=self._capture.get(cv2.CAP_PROP_FPS) or options.fps,
            live=True,
            description=f"opencv:{options.device}",
        )

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        bgr = self._first
        while True:
            now = time.perf_counter()
            yield Frame(
                index=index,
                timestamp=now - start,
                image=self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB),
                captured_at=now,
            )
            index += 1
            ok, bgr = self._capture.read()
            if not ok:
                return

    def close(self) -> None:
        self._capture.release()


def open_camera(options: CameraOptions, context: BuildContext) -> PyAVCamera | OpenCVCamera:
    if options.api == "opencv":
        return OpenCVCamera(options)
    return PyAVCamera(options)


@edgedepth.hookimpl
def register_sources(register):
    register("camera", CameraOptions, open_camera, description="a live camera (PyAV or OpenCV)")
