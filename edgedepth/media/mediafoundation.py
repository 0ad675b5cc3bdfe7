"""Cameras through Media Foundation, as the Windows Camera app reaches them: WinRT's
``MediaCapture`` and a ``MediaFrameReader``, through the PyWinRT packages (the ``windows``
extra: ``winrt-Windows.Media.Capture`` and its sibling namespaces, with win_arm64 wheels).

Media Foundation sees every camera, including the MIPI cameras of Snapdragon laptops, which sit
behind the Windows Camera Frame Server and which DirectShow sees only where Windows bridges
them. A camera is a ``MediaFrameSourceGroup`` with a colour source; its formats are that
source's ``SupportedFormats`` (read with the camera opened shared, read-only, so another app
using it is not disturbed). Frames arrive on a WinRT thread; the reader runs in ``Realtime``
acquisition mode and :meth:`MediaFoundationCamera.frames` takes the latest one each time, so a
slow pipeline never builds up latency. Each frame's ``SoftwareBitmap`` (CPU memory) is converted
to RGB by :func:`edgedepth.media.pixel_formats.to_rgb`.

The WinRT calls run only on Windows; :func:`choose_format` and the conversion run everywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.stages import SourceInfo
from edgedepth.media.camera_devices import CameraDevice, CameraFormat
from edgedepth.media.pixel_formats import Plane, to_rgb

#: Subtypes read as they come (anything else, e.g. MJPG, is asked for as NV12: Media
#: Foundation decodes it), best first.
NATIVE_SUBTYPES = ("NV12", "YUY2")
#: Seconds without a frame before the source gives up (a camera unplugged, or taken away).
FRAME_TIMEOUT = 5.0
#: MF_MT_YUV_MATRIX and MF_MT_VIDEO_NOMINAL_RANGE (mfapi.h), in a format's Properties.
YUV_MATRIX = "3e23d450-2c75-4d25-a00e-b91670d12327"
NOMINAL_RANGE = "c21b8ee5-b956-4071-8daf-325edf5cab11"
#: MFVideoTransferMatrix values → swscale's names.
MATRICES = {1: "ITU709", 2: "ITU601", 3: "SMPTE240M"}
PRIVACY_HELP = (
    "if the camera is switched off for desktop apps: Settings > Privacy & security > Camera > "
    "Let desktop apps access your camera"
)


def _winrt() -> Any:
    """The PyWinRT namespaces used here, or a one-line error naming the extra."""
    try:
        import winrt.windows.foundation  # noqa: F401  (IAsyncOperation.get)
        import winrt.windows.graphics.imaging as imaging
        import winrt.windows.media.capture as capture
        import winrt.windows.media.capture.frames as frames
        import winrt.windows.media.mediaproperties as properties
    except ImportError:
        raise EdgedepthError(
            "Media Foundation cameras need PyWinRT: pip install 'edgedepth[windows]'"
        ) from None
    return type("WinRT", (), {"capture": capture, "frames": frames, "imaging": imaging,
                              "properties": properties})  # fmt: skip


def _wait(operation: Any, what: str, timeout: float = 15.0) -> Any:
    """The result of a WinRT async operation (blocking; this is the capture thread), its
    failure as one line."""
    from winrt.windows.foundation import AsyncStatus

    try:
        if operation.wait(timeout) == AsyncStatus.STARTED:
            operation.cancel()
            raise EdgedepthError(f"camera: {what}: no answer in {timeout:g} s")
        return operation.get()
    except OSError as exc:  # WinRT errors arrive as OSError with the HRESULT's message
        detail = str(exc).strip() or type(exc).__name__
        if "denied" in detail.lower():
            detail += f" ({PRIVACY_HELP})"
        raise EdgedepthError(f"camera: {what}: {detail}") from None


def _colour_sources(group: Any, winrt: Any) -> list[Any]:
    return [
        info
        for info in group.source_infos
        if info.source_kind == winrt.frames.MediaFrameSourceKind.COLOR
    ]


def _open_capture(group: Any, winrt: Any, shared: bool) -> Any:
    settings = winrt.capture.MediaCaptureInitializationSettings()
    settings.source_group = group
    modes = winrt.capture.MediaCaptureSharingMode
    settings.sharing_mode = modes.SHARED_READ_ONLY if shared else modes.EXCLUSIVE_CONTROL
    settings.memory_preference = winrt.capture.MediaCaptureMemoryPreference.CPU
    settings.streaming_capture_mode = winrt.capture.StreamingCaptureMode.VIDEO
    media_capture = winrt.capture.MediaCapture()
    _wait(media_capture.initialize_async(settings), f"opening {group.display_name!r}")
    return media_capture


def _colour_source(media_capture: Any, winrt: Any) -> Any:
    """The colour source to read: the record stream if there is one, else the preview."""
    sources = [s for s in media_capture.frame_sources.values()
               if s.info.source_kind == winrt.frames.MediaFrameSourceKind.COLOR]  # fmt: skip
    if not sources:
        raise EdgedepthError("camera: it has no colour stream")
    record = winrt.capture.MediaStreamType.VIDEO_RECORD
    sources.sort(key=lambda s: s.info.media_stream_type != record)
    return sources[0]


def _format(mf_format: Any) -> CameraFormat:
    rate = mf_format.frame_rate
    fps = rate.numerator / rate.denominator if rate.denominator else None
    video = mf_format.video_format
    return CameraFormat(
        int(video.width), int(video.height), round(fps, 3) if fps else None, mf_format.subtype
    )


def list_cameras(formats: bool = True) -> list[CameraDevice]:
    """Every camera Media Foundation offers (source groups with a colour source), in its
    order; with ``formats``, what each can deliver (the camera is opened shared to read them;
    a camera that cannot be opened is listed without them)."""
    winrt = _winrt()
    groups = _wait(winrt.frames.MediaFrameSourceGroup.find_all_async(), "listing cameras")
    cameras = []
    for group in groups:
        if not _colour_sources(group, winrt):  # infrared (Windows Hello), depth: not cameras
            continue
        offered: tuple[CameraFormat, ...] = ()
        if formats:
            try:
                media_capture = _open_capture(group, winrt, shared=True)
            except EdgedepthError:
                pass
            else:
                with media_capture:
                    source = _colour_source(media_capture, winrt)
                    offered = tuple(dict.fromkeys(_format(f) for f in source.supported_formats))
        cameras.append(
            CameraDevice(len(cameras), group.display_name, group.id, "mediafoundation", offered)
        )
    return cameras


def choose_format(
    offered: list[CameraFormat],
    width: int | None,
    height: int | None,
    fps: float | None,
    default_size: tuple[int, int],
    default_fps: float,
) -> int | None:
    """The index of the format to ask for, or None to keep the camera's own: the size asked
    (else ``default_size`` if offered, else the camera's own), the rate nearest the one asked
    (else ``default_fps``), NV12 before YUY2 before formats Media Foundation must decode. A
    size or rate the camera does not offer is a one-line error listing what it does."""
    size = (width, height) if width and height else None
    sized = [i for i, f in enumerate(offered) if (f.width, f.height) == (size or default_size)]
    if not sized:
        if size is None and fps is None:
            return None
        if size is not None:
            sizes = sorted({(f.width, f.height) for f in offered}, reverse=True)
            raise EdgedepthError(
                f"camera: {width}x{height} is not offered; it offers "
                + ", ".join(f"{w}x{h}" for w, h in sizes)
            )
        sized = list(range(len(offered)))
    wanted = fps or default_fps
    if fps is not None and not any(abs((offered[i].fps or 0) - fps) < 0.5 for i in sized):
        rates = sorted({offered[i].fps or 0 for i in sized}, reverse=True)
        raise EdgedepthError(
            f"camera: {fps:g} fps is not offered at that size; it offers "
            + ", ".join(f"{r:g}" for r in rates)
        )

    def preference(i: int) -> tuple[float, int]:
        subtype = offered[i].pixel_format.upper()
        rank = NATIVE_SUBTYPES.index(subtype) if subtype in NATIVE_SUBTYPES else 9
        return (abs((offered[i].fps or 0) - wanted), rank)

    return min(sized, key=preference)


class MediaFoundationCamera:
    """A live camera through ``MediaCapture`` + ``MediaFrameReader`` (latest frame wins)."""

    def __init__(
        self,
        camera: CameraDevice,
        width: int | None,
        height: int | None,
        fps: float | None,
        default_size: tuple[int, int],
        default_fps: float,
    ) -> None:
        winrt = self._winrt = _winrt()
        group = _wait(
            winrt.frames.MediaFrameSourceGroup.from_id_async(camera.open_name),
            f"finding {camera.name!r}",
        )
        if group is None:
            raise EdgedepthError(f"camera: {camera.name!r} is gone (unplugged?)")
        self._capture = _open_capture(group, winrt, shared=False)
        try:
            self._start(camera, width, height, fps, default_size, default_fps)
        except BaseException:
            self._capture.close()
            raise

    def _start(self, camera, width, height, fps, default_size, default_fps) -> None:
        winrt = self._winrt
        source = _colour_source(self._capture, winrt)
        supported = list(source.supported_formats)
        chosen = choose_format(
            [_format(f) for f in supported], width, height, fps, default_size, default_fps
        )
        if chosen is not None:
            _wait(source.set_format_async(supported[chosen]), "setting the format")
        current = _format(source.current_format)
        subtype = current.pixel_format.upper()
        if subtype not in NATIVE_SUBTYPES:  # MJPG and others: Media Foundation decodes
            subtype = winrt.properties.MediaEncodingSubtypes.nv12
        self._matrix, self._full_range = _colour_of(source.current_format)
        self._reader = _wait(
            self._capture.create_frame_reader_with_subtype_async(source, subtype),
            "creating the frame reader",
        )
        self._reader.acquisition_mode = winrt.frames.MediaFrameReaderAcquisitionMode.REALTIME
        self._arrived = threading.Event()
        self._closed = False
        self._token = self._reader.add_frame_arrived(lambda reader, args: self._arrived.set())
        status = _wait(self._reader.start_async(), "starting the camera")
        if status != winrt.frames.MediaFrameReaderStartStatus.SUCCESS:
            reason = getattr(status, "name", str(status)).lower().replace("_", " ")
            in_use = " (another app is using the camera)" if "exclusive" in reason else ""
            raise EdgedepthError(f"camera: {camera.name!r} did not start: {reason}{in_use}")
        self.info = SourceInfo(
            width=current.width,
            height=current.height,
            fps=current.fps,
            live=True,
            description=f"mediafoundation:{camera.name} ({current})",
        )

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        waited = 0.0
        while not self._closed:
            if not self._arrived.wait(0.25):
                waited += 0.25
                if waited >= FRAME_TIMEOUT:
                    raise EdgedepthError(f"camera: no frame for {FRAME_TIMEOUT:g} s")
                continue
            self._arrived.clear()
            waited = 0.0
            reference = self._reader.try_acquire_latest_frame()
            if reference is None:
                continue
            with reference:
                image = self._rgb(reference.video_media_frame.software_bitmap)
            now = time.perf_counter()
            yield Frame(index=index, timestamp=now - start, image=image, captured_at=now)
            index += 1

    def _rgb(self, bitmap: Any) -> Any:
        imaging = self._winrt.imaging
        if bitmap.bitmap_pixel_format not in (
            imaging.BitmapPixelFormat.NV12, imaging.BitmapPixelFormat.YUY2,
            imaging.BitmapPixelFormat.BGRA8,
        ):  # fmt: skip
            bitmap = imaging.SoftwareBitmap.convert(bitmap, imaging.BitmapPixelFormat.BGRA8)
        # The frame's own bitmap is released with the frame reference, not here.
        with bitmap.lock_buffer(imaging.BitmapBufferAccessMode.READ) as buffer:
            planes = [
                Plane(d.start_index, d.stride)
                for d in map(buffer.get_plane_description, range(buffer.get_plane_count()))
            ]
            return to_rgb(
                memoryview(buffer), bitmap.bitmap_pixel_format.name, bitmap.pixel_width,
                bitmap.pixel_height, planes, self._matrix, self._full_range,
            )  # fmt: skip

    def close(self) -> None:
        self._closed = True
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.remove_frame_arrived(self._token)
            _wait(reader.stop_async(), "stopping the camera")
            reader.close()
        self._capture.close()


def _colour_of(mf_format: Any) -> tuple[str | None, bool]:
    """(matrix, full range) the format declares; (None, False): Media Foundation's defaults."""
    from winrt.system import unbox_uint32

    declared = {str(key): value for key, value in mf_format.properties.items()}
    matrix = declared.get(YUV_MATRIX)
    nominal = declared.get(NOMINAL_RANGE)
    return (
        MATRICES.get(unbox_uint32(matrix)) if matrix is not None else None,
        nominal is not None and unbox_uint32(nominal) == 1,  # MFNominalRange_0_255
    )
