"""The cameras this machine offers, through PyAV's FFmpeg (no OpenCV): DirectShow on Windows,
V4L2 on Linux, AVFoundation on macOS. Used by the ``camera`` source to turn ``device: 0`` into
what FFmpeg opens, and by ``edgedepth doctor`` to list them.

On Windows FFmpeg opens a camera by name (``video=Integrated Camera``) or by the unique
"alternative name" DirectShow gives it (``video=@device_pnp_\\\\?\\usb#…``), never by index; an
index here is the camera's position among the video devices DirectShow lists, and it resolves to
the unique name (two identical webcams share a friendly name).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgedepth.api.errors import EdgedepthError

#: FFmpeg's camera input per platform.
DEVICE_FORMATS = {"linux": "v4l2", "win32": "dshow", "darwin": "avfoundation"}


@dataclass(frozen=True)
class CameraDevice:
    """One video capture device."""

    #: Position among the video devices (what ``device: N`` in a config means).
    index: int
    #: The name people see ("Integrated Camera").
    name: str
    #: What FFmpeg opens: the DirectShow unique name, /dev/videoN, or the AVFoundation index.
    open_name: str

    def url(self, input_format: str) -> str:
        """The string to give ``av.open`` for this device."""
        return f"video={self.open_name}" if input_format == "dshow" else self.open_name


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
    return [CameraDevice(i, name, open_name) for i, (name, open_name) in enumerate(video)]


def _unique(devices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, open name) pairs without repeated open names, in order."""
    seen: set[str] = set()
    return [d for d in devices if not (d[1] in seen or seen.add(d[1]))]


def _dshow_log_lines() -> list[str]:
    """FFmpeg's device list, printed through its log by ``-list_devices true`` (older PyAV):
    the log arrives in pieces (a device line is three av_log calls), joined back into lines."""
    import av
    import av.logging

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        # It ends in an error ("Immediate exit requested"): listing is all it does.
        with av.logging.Capture() as logs, contextlib.suppress(av.FFmpegError, OSError):
            av.open("dummy", format="dshow", options={"list_devices": "true"}).close()
    finally:
        av.logging.set_level(previous)
    return join_log_pieces(logs)


def join_log_pieces(logs: Iterable[tuple[int, str, str]]) -> list[str]:
    """Lines of the ``dshow`` messages in PyAV's captured log ((level, name, message) pieces)."""
    return "".join(message for _, name, message in logs if name == "dshow").splitlines()


def list_cameras(input_format: str | None = None) -> list[CameraDevice]:
    """The video capture devices FFmpeg sees with ``input_format`` (default: this platform's)."""
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
        return [
            CameraDevice(_v4l2_number(open_name, i), name, open_name)
            for i, (name, open_name) in enumerate(video)
        ]
    if input_format == "dshow":
        return parse_dshow_list(_dshow_log_lines())
    if input_format == "v4l2":
        nodes = sorted(Path("/dev").glob("video*"), key=lambda p: _v4l2_number(str(p), 0))
        return [CameraDevice(_v4l2_number(str(n), 0), _v4l2_name(n), str(n)) for n in nodes]
    return []


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


def dshow_device(index: int, cameras: list[CameraDevice]) -> str:
    """``video=<unique name>`` of the camera at ``index``; a one-line error listing what there
    is when there is no such camera."""
    if 0 <= index < len(cameras):
        return cameras[index].url("dshow")
    listing = ", ".join(f"{c.index}: {c.name}" for c in cameras) or "none"
    raise EdgedepthError(
        f"camera: device {index}: DirectShow lists {len(cameras)} camera(s) ({listing}); "
        "`edgedepth doctor` lists them too"
    )
