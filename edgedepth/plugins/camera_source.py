"""``camera``: a live camera. On Windows through Media Foundation (WinRT ``MediaCapture``, the
``windows`` extra), which sees every camera including the built-in MIPI cameras of Snapdragon
laptops, falling back to DirectShow through PyAV; v4l2 on Linux and avfoundation on macOS
through PyAV; OpenCV when it is installed and asked for.

``device: 0`` works everywhere without OpenCV: on Windows the index is a position in Media
Foundation's list (DirectShow's when Media Foundation is not there), and a name works in either
(``edgedepth cameras`` lists both, with their formats)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext, SourceInfo

#: Asked for when the config gives no size/rate. Nearly every UVC webcam offers 640×480 at 30
#: fps; DepthAnythingV2 works at 350–518 px anyway; and DirectShow's own default is the first
#: format the driver lists, often its largest size at 5–15 fps, which would cap the pipeline.
DEFAULT_SIZE = (640, 480)
DEFAULT_FPS = 30.0


class CameraOptions(StrictModel):
    device: int | str = 0
    """Index (0: the first camera; /dev/video0 on Linux) or a name as `edgedepth cameras`
    shows it (``Integrated Camera``; ``video=…`` and unique names work too), or a device
    string for PyAV: ``/dev/video2``, ``0`` (macOS avfoundation)."""
    width: int | None = Field(None, gt=0)
    """Capture width; omitted: 640 (with 480 and 30 fps) if the camera offers it, else its own."""
    height: int | None = Field(None, gt=0)
    """Capture height (with ``width``); omitted: 480 if the camera offers it."""
    fps: float | None = Field(None, gt=0)
    """Frames per second to ask for; omitted: 30 if the camera offers it."""
    api: Literal["auto", "mediafoundation", "pyav", "opencv"] = "auto"
    """``auto``: Media Foundation then DirectShow on Windows, PyAV elsewhere; ``pyav``: FFmpeg's
    input (dshow, v4l2, avfoundation); ``opencv`` needs the ``cv`` extra."""
    input_format: str | None = None
    """FFmpeg input format, when the platform default is not right (implies ``api: pyav``)."""


class PyAVCamera:
    """A camera through FFmpeg's device input: ``device`` is what ``av.open`` takes."""

    def __init__(self, options: CameraOptions, device: str, input_format: str) -> None:
        import av

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


def pyav_device(device: int | str, input_format: str) -> str:
    """What FFmpeg opens for a ``device`` that needs no listing: /dev/videoN (v4l2), the
    index (avfoundation), a string as it is (``video=`` added for a dshow name)."""
    if isinstance(device, str) and not device.isdigit():
        if input_format == "dshow" and not device.startswith(("video=", "audio=")):
            return f"video={device}"
        return device
    return f"/dev/video{int(device)}" if input_format == "v4l2" else str(device)


def open_listed(options: CameraOptions, apis: tuple[str, ...]) -> Any:
    """Windows: list the cameras of ``apis`` (Media Foundation, DirectShow), find the one
    ``device`` names and open it with the first API that can."""
    from edgedepth.media import mediafoundation
    from edgedepth.media.cameras import list_api, open_first, resolve_device

    listings = [list_api(api, formats=False) for api in apis]
    openers = {
        "mediafoundation": lambda camera: mediafoundation.MediaFoundationCamera(
            camera, options.width, options.height, options.fps, DEFAULT_SIZE, DEFAULT_FPS
        ),
        "dshow": lambda camera: PyAVCamera(options, camera.url("dshow"), "dshow"),
    }
    return open_first(resolve_device(options.device, listings), openers)


def open_camera(options: CameraOptions, context: BuildContext) -> Any:
    from edgedepth.media.cameras import camera_apis, default_format

    if options.api == "opencv":
        return OpenCVCamera(options)
    apis = camera_apis()
    if options.api == "mediafoundation":
        return open_listed(options, ("mediafoundation",))
    if options.input_format is None and options.api == "auto" and "mediafoundation" in apis:
        return open_listed(options, apis)
    input_format = options.input_format or default_format()
    if input_format == "dshow" and (isinstance(options.device, int) or options.device.isdigit()):
        return open_listed(options, ("dshow",))  # FFmpeg opens DirectShow cameras by name only
    return PyAVCamera(options, pyav_device(options.device, input_format), input_format)


@edgedepth.hookimpl
def register_sources(register):
    register(
        "camera", CameraOptions, open_camera,
        description="a live camera (Media Foundation on Windows, PyAV, or OpenCV)",
    )  # fmt: skip
