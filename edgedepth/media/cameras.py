"""The cameras this machine offers, through every camera API it has, and which one
``device: 0`` or ``device: "Integrated Camera"`` means.

The APIs, in the order the ``camera`` source tries them (:data:`CAMERA_APIS`):

- ``mediafoundation`` (Windows): WinRT ``MediaCapture``, as the Windows Camera app; it sees
  every camera, including the MIPI cameras of Snapdragon laptops behind the Windows Camera
  Frame Server (:mod:`edgedepth.media.mediafoundation`, the ``windows`` extra);
- ``dshow`` (Windows), ``v4l2`` (Linux), ``avfoundation`` (macOS): FFmpeg's device inputs
  through PyAV. DirectShow sees USB webcams, and frame-server cameras only where Windows
  bridges them.

On Windows FFmpeg opens a camera by name (``video=Integrated Camera``) or by the unique
"alternative name" DirectShow gives it (``video=@device_pnp_\\\\?\\usb#…``), never by index;
an index is the camera's position in an API's list, and it resolves to the unique name (two
identical webcams share a friendly name).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.media.camera_devices import CameraDevice, CameraFormat

#: FFmpeg's camera input per platform.
DEVICE_FORMATS = {"linux": "v4l2", "win32": "dshow", "darwin": "avfoundation"}
#: The camera APIs of each platform, in the order ``api: auto`` tries them.
CAMERA_APIS = {
    "win32": ("mediafoundation", "dshow"),
    "linux": ("v4l2",),
    "darwin": ("avfoundation",),
}


@dataclass
class CameraListing:
    """What one API sees: its cameras, or why it could not list them."""

    api: str
    devices: list[CameraDevice] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "devices": [d.as_dict() for d in self.devices],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraListing:
        """A listing as ``edgedepth cameras --json`` prints it (recorded ones, in tests)."""
        devices = [
            CameraDevice(**{**d, "formats": tuple(CameraFormat(**f) for f in d["formats"])})
            for d in data["devices"]
        ]
        return cls(data["api"], devices, data.get("error"))


def default_format() -> str:
    return DEVICE_FORMATS.get(sys.platform, "v4l2")


# --- DirectShow's device list, as FFmpeg prints it -----------------------------------------------

_PREFIX = re.compile(r"^\[dshow @ [^\]]*\]\s?")
_DEVICE_LINE = re.compile(r'^\s*"(?P<name>.*)"(?:\s+\((?P<types>[^)]*)\))?\s*$')
_ALTERNATIVE = re.compile(r'^\s*Alternative name\s+"(?P<name>.*)"\s*$')


def parse_dshow_list(text: str | Iterable[str]) -> list[CameraDevice]:
    """The video devices in FFmpeg's ``-list_devices true -f dshow`` output, in order.

    Two layouts exist. Up to FFmpeg 4.4 devices follow the section lines "DirectShow video
    devices" / "DirectShow audio devices"; from 5.0 each device line ends with its media types,
    ``"Name" (video)``, ``(audio)``, ``(audio, video)`` or ``(none)``. Each device may be followed
    by an ``Alternative name "…"`` line (FFmpeg 2.x on). The ``[dshow @ 0x…]`` prefix of the
    command-line tool's log is optional (PyAV's log capture has none).

    A camera is a device with video: ``(none)`` devices expose no pins FFmpeg could open (a
    virtual camera whose program is not running), and a device with audio and video listed in
    both passes counts once."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    section: str | None = None
    devices: list[tuple[str, str | None, bool]] = []  # (name, unique name, is video)
    for raw in lines:
        line = _PREFIX.sub("", raw.rstrip("\r\n"))
        lowered = line.strip().lower()
        if lowered.startswith("directshow video devices"):
            section = "video"
            continue
        if lowered.startswith("directshow audio devices"):
            section = "audio"
            continue
        alternative = _ALTERNATIVE.match(line)
        if alternative and devices:
            name, _, is_video = devices[-1]
            devices[-1] = (name, alternative.group("name"), is_video)
            continue
        device = _DEVICE_LINE.match(line)
        if device:
            types = device.group("types")
            is_video = "video" in types.split(", ") if types is not None else section == "video"
            devices.append((device.group("name"), None, is_video))
    video = _unique([(name, unique or name) for name, unique, is_video in devices if is_video])
    return [CameraDevice(i, name, open_name, "dshow") for i, (name, open_name) in enumerate(video)]


def _unique(devices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, open name) pairs without repeated open names, in order."""
    seen: set[str] = set()
    return [d for d in devices if not (d[1] in seen or seen.add(d[1]))]


_FORMAT_LINE = re.compile(
    r"(?:pixel_format|vcodec)=(?P<format>\S+)\s+min s=\d+x\d+ fps=[\d.e+]+ "
    r"max s=(?P<width>\d+)x(?P<height>\d+) fps=(?P<fps>[\d.e+]+)"
)


def parse_dshow_options(text: str | Iterable[str]) -> tuple[CameraFormat, ...]:
    """The formats in FFmpeg's ``-list_options true -f dshow -i video=NAME`` output: lines
    ``pixel_format=yuyv422  min s=640x480 fps=5 max s=640x480 fps=30`` (``vcodec=mjpeg`` for
    compressed ones; FFmpeg >= 5 appends the colour description), each pin's formats in
    turn. Each is kept at its largest size and rate; repeats once."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    found: dict[CameraFormat, None] = {}
    for line in lines:
        match = _FORMAT_LINE.search(line)
        if match:
            width, height = int(match.group("width")), int(match.group("height"))
            fps = round(float(match.group("fps")), 3)
            found[CameraFormat(width, height, fps, match.group("format"))] = None
    return tuple(found)


def _dshow_log_lines(url: str = "dummy", option: str = "list_devices") -> list[str]:
    """What FFmpeg prints through its log for ``-list_devices true`` (older PyAV) or
    ``-list_options true``: the log arrives in pieces (a device line is three av_log calls),
    joined back into lines."""
    import av
    import av.logging

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        # It ends in an error ("Immediate exit requested"): listing is all it does.
        with av.logging.Capture() as logs, contextlib.suppress(av.FFmpegError, OSError):
            av.open(url, format="dshow", options={option: "true"}).close()
    finally:
        av.logging.set_level(previous)
    return join_log_pieces(logs)


def join_log_pieces(logs: Iterable[tuple[int, str, str]]) -> list[str]:
    """Lines of the ``dshow`` messages in PyAV's captured log ((level, name, message) pieces)."""
    return "".join(message for _, name, message in logs if name == "dshow").splitlines()


def list_cameras(input_format: str | None = None, formats: bool = False) -> list[CameraDevice]:
    """The video capture devices FFmpeg sees with ``input_format`` (default: this
    platform's); with ``formats``, each DirectShow camera's formats too (FFmpeg opens each)."""
    input_format = input_format or default_format()
    try:
        import av.device

        listed = av.device.enumerate_input_devices(input_format)
    except ImportError:  # PyAV without device enumeration
        listed = None
    except ValueError:  # FFmpeg built without this input format
        return []
    except Exception:  # the device API itself failed (no permission, no devices): fall back
        listed = None
    if listed is not None and (listed or input_format != "dshow"):
        # v4l2 lists capture devices without media types; dshow tags each device.
        video = _unique([(d.description or d.name, d.name) for d in listed
                         if "video" in d.media_types or input_format == "v4l2"])  # fmt: skip
        cameras = [
            CameraDevice(_v4l2_number(open_name, i), name, open_name, input_format)
            for i, (name, open_name) in enumerate(video)
        ]
    elif input_format == "dshow":
        cameras = parse_dshow_list(_dshow_log_lines())
    elif input_format == "v4l2":
        nodes = sorted(Path("/dev").glob("video*"), key=lambda p: _v4l2_number(str(p), 0))
        cameras = [
            CameraDevice(_v4l2_number(str(n), 0), _v4l2_name(n), str(n), "v4l2") for n in nodes
        ]
    else:
        cameras = []
    if formats and input_format == "dshow":
        cameras = [
            replace(
                c, formats=parse_dshow_options(_dshow_log_lines(c.url("dshow"), "list_options"))
            )
            for c in cameras
        ]
    return cameras


def camera_apis(platform: str = sys.platform) -> tuple[str, ...]:
    """This platform's camera APIs, in the order ``api: auto`` tries them."""
    return CAMERA_APIS.get(platform, ("v4l2",))


def list_api(api: str, formats: bool = True) -> CameraListing:
    """What one API sees; an API that cannot run here (not installed, failing) says why."""
    try:
        if api == "mediafoundation":
            from edgedepth.media import mediafoundation

            return CameraListing(api, mediafoundation.list_cameras(formats))
        return CameraListing(api, list_cameras(api, formats))
    except EdgedepthError as exc:
        return CameraListing(api, error=str(exc))
    except Exception as exc:  # a camera stack failing must not stop the listing
        return CameraListing(api, error=f"{type(exc).__name__}: {exc}")


def list_all(apis: Iterable[str] | None = None, formats: bool = True) -> list[CameraListing]:
    """Every camera each API of this platform sees (``edgedepth cameras``, doctor)."""
    return [list_api(api, formats) for api in (apis or camera_apis())]


def describe(listings: list[CameraListing]) -> str:
    """``mediafoundation: 0: Integrated Camera; dshow: none`` for one-line errors."""
    parts = []
    for listing in listings:
        seen = ", ".join(f"{c.index}: {c.name}" for c in listing.devices)
        parts.append(f"{listing.api}: {seen or listing.error or 'none'}")
    return "; ".join(parts)


def resolve_device(device: int | str, listings: list[CameraListing]) -> list[CameraDevice]:
    """The cameras ``device`` names, in the order to try them.

    An index counts in the first API, in fallback order, that lists any camera (Media
    Foundation's list on Windows, which holds every camera); the same camera in the later
    APIs (by name) follows, to fall back on if opening it fails. A name matches a camera's
    name (case-insensitively) or its unique open name, in every API in order. Nothing found:
    a one-line error listing what each API sees."""
    listed = [listing for listing in listings if listing.devices]
    if isinstance(device, int) or str(device).isdigit():
        index = int(device)
        first = listed[0].devices if listed else []
        if not 0 <= index < len(first):
            raise EdgedepthError(
                f"camera: device {index}: no such camera ({describe(listings)}); "
                "`edgedepth cameras` lists them"
            )
        name = first[index].name
        later = [c for listing in listed[1:] for c in listing.devices if c.name == name]
        return [first[index], *later[:1]]
    wanted = str(device).removeprefix("video=")
    matches = [
        camera
        for listing in listed
        for camera in listing.devices
        if camera.name.casefold() == wanted.casefold() or camera.open_name == wanted
    ]
    if not matches:
        raise EdgedepthError(
            f"camera: device {device!r}: no camera of that name ({describe(listings)}); "
            "`edgedepth cameras` lists them"
        )
    first_of_each: dict[str, CameraDevice] = {}
    for camera in matches:
        first_of_each.setdefault(camera.api, camera)
    return list(first_of_each.values())


def open_first(cameras: list[CameraDevice], openers: dict[str, Callable[[CameraDevice], Any]]):
    """Open the first of ``cameras`` its API's opener can open; one error naming every
    attempt when none can."""
    failures = []
    for camera in cameras:
        try:
            return openers[camera.api](camera)
        except EdgedepthError as exc:
            failures.append(f"{camera.api}: {exc}")
    raise EdgedepthError(
        f"camera: cannot open {cameras[0].name!r}: " + "; ".join(failures)
        if failures
        else "camera: nothing to open"
    )


def _v4l2_number(path: str, default: int) -> int:
    """/dev/video2 → 2: on Linux ``device: 2`` means that node (not the 3rd listed)."""
    match = re.fullmatch(r"/dev/video(\d+)", path)
    return int(match.group(1)) if match else default


def _v4l2_name(node: Path) -> str:
    name_file = Path("/sys/class/video4linux") / node.name / "name"
    try:
        return name_file.read_text().strip() or node.name
    except OSError:
        return node.name


#: What each API is, for people.
API_NAMES = {
    "mediafoundation": "Media Foundation, as the Windows Camera app",
    "dshow": "DirectShow, through FFmpeg",
    "v4l2": "Video4Linux2, through FFmpeg",
    "avfoundation": "AVFoundation, through FFmpeg",
}
#: What to do when no API sees a camera, per platform.
NO_CAMERA_HELP = {
    "win32": (
        "no camera found: check that it is switched on (some laptops have a key or a shutter) "
        "and allowed for desktop apps (Settings > Privacy & security > Camera > Let desktop "
        "apps access your camera); that the Windows Camera app shows it; for Media Foundation "
        'install `pip install "edgedepth[windows]"`'
    ),
    "linux": "no camera found: check `ls /dev/video*` and that you are in the `video` group",
    "darwin": "no camera found: allow the terminal in System Settings > Privacy > Camera",
}


def format_listings(listings: list[CameraListing], platform: str = sys.platform) -> list[str]:
    """The report of ``edgedepth cameras`` (and doctor's camera section): each API, each
    camera with its index, name and formats grouped by pixel format; what to do when none."""
    lines = []
    for listing in listings:
        lines.append(f"{listing.api} ({API_NAMES.get(listing.api, listing.api)}):")
        if listing.error:
            lines.append(f"  cannot list them: {listing.error}")
        elif not listing.devices:
            lines.append("  none found")
        for camera in listing.devices:
            lines.append(f"  {camera.index}: {camera.name}")
            by_format: dict[str, list[str]] = {}
            for offered in camera.formats:
                rate = f"@{offered.fps:g}" if offered.fps else ""
                by_format.setdefault(offered.pixel_format, []).append(
                    f"{offered.width}x{offered.height}{rate}"
                )
            lines += [f"      {name}: {', '.join(sizes)}" for name, sizes in by_format.items()]
    if not any(listing.devices for listing in listings):
        lines.append(NO_CAMERA_HELP.get(platform, "no camera found"))
    return lines
