"""Cameras without OpenCV. What runs here of the Windows path: the device lists of several
FFmpeg versions (tests/data/dshow) and DirectShow's format lines; `device:` resolved by index
or name on listings of a Snapdragon laptop in `edgedepth cameras --json` layout
(tests/data/cameras, written to the APIs' documented layouts: see its README); the fallback
order from Media Foundation to DirectShow; the choice of a Media Foundation format; the pixel
formats a SoftwareBitmap hands over (NV12, YUY2, BGRA8, with strides) to RGB, against FFmpeg's
converter and the BT.601/BT.709 formulas. The WinRT calls themselves run in the Windows
workflow (`edgedepth cameras`). The PyAV camera runs for real on FFmpeg's virtual lavfi
device."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from edgedepth.api.errors import EdgedepthError
from edgedepth.media import cameras
from edgedepth.media.cameras import CameraFormat, CameraListing
from edgedepth.media.mediafoundation import choose_format
from edgedepth.media.pixel_formats import Plane, to_rgb
from edgedepth.plugins import camera_source
from tests.conftest import run_edgedepth

DATA = Path(__file__).parent / "data"


def listing(name: str) -> list[cameras.CameraDevice]:
    return cameras.parse_dshow_list((DATA / "dshow" / name).read_text(encoding="utf-8"))


def recorded(name: str) -> list[CameraListing]:
    text = (DATA / "cameras" / name).read_text(encoding="utf-8")
    return [CameraListing.from_dict(entry) for entry in json.loads(text)]


# --- DirectShow, as FFmpeg lists it ------------------------------------------------------------


def test_device_lists_of_several_ffmpeg_versions():
    assert [(c.index, c.name, c.open_name) for c in listing("ffmpeg-1.0.txt")] == [
        (0, "Integrated Camera", "Integrated Camera"),  # no alternative names yet
        (1, "screen-capture-recorder", "screen-capture-recorder"),
    ]
    old = listing("ffmpeg-3.2.txt")  # sections; audio devices (one with a CJK name) left out
    assert [c.name for c in old] == ["Integrated Webcam", "screen-capture-recorder"]
    assert old[0].open_name.startswith(r"@device_pnp_\\?\usb#vid_0c45&pid_6448")
    new = listing("ffmpeg-6.txt")  # "(video)" suffixes; "(none)" and audio-only left out
    names = ["Integrated Camera", "USB Camera", "USB Camera", "Capture Card"]
    assert [c.name for c in new] == names
    assert len({c.open_name for c in new}) == 4  # twin webcams stay apart by unique name


def test_directshow_formats_as_ffmpeg_prints_them():
    text = (DATA / "dshow" / "options-ffmpeg-6.txt").read_text(encoding="utf-8")
    assert [str(f) for f in cameras.parse_dshow_options(text)] == [
        "640x480 30 fps yuyv422",  # twice on the capture pin, once on the still pin: once
        "320x240 30 fps yuyv422",
        "1920x1080 30 fps mjpeg",
        "1280x720 60 fps mjpeg",  # 1e7 / 166666 = 60.0002
    ]


def test_the_log_of_older_pyav_is_joined_back_into_lines():
    # FFmpeg >= 5 prints a device line in three av_log calls; PyAV's Capture keeps them apart.
    pieces = [
        (32, "dshow", '"Integrated Camera"'), (32, "dshow", " (video)"), (32, "dshow", "\n"),
        (32, "dshow", '  Alternative name "@device_pnp_\\\\?\\display#qcom0c1a"\n'),
        (32, "AVFormatContext", "ignored\n"),
        (32, "dshow", '"Microphone (Realtek(R) Audio)"'), (32, "dshow", " (audio)"),
        (32, "dshow", "\n"),
    ]  # fmt: skip
    (camera,) = cameras.parse_dshow_list(cameras.join_log_pieces(pieces))
    assert camera.url("dshow") == "video=@device_pnp_\\\\?\\display#qcom0c1a"


# --- which camera `device:` means, and the fallback order ------------------------------------


def test_an_index_counts_in_media_foundation_and_falls_back_to_the_same_camera():
    laptop = recorded("snapdragon-x-laptop.json")
    (builtin,) = cameras.resolve_device(0, laptop)  # the MIPI camera: Media Foundation only
    assert (builtin.api, builtin.name) == ("mediafoundation", "Integrated Camera")
    usb = cameras.resolve_device("1", laptop)  # the webcam: both APIs, Media Foundation first
    assert [(c.api, c.name) for c in usb] == [
        ("mediafoundation", "Logitech BRIO"), ("dshow", "Logitech BRIO")
    ]  # fmt: skip
    assert usb[1].url("dshow").startswith("video=@device_pnp_")  # by its unique name
    seen = r"mediafoundation: 0: Integrated Camera, 1: Logitech BRIO; dshow: 0: Logitech BRIO"
    with pytest.raises(EdgedepthError, match=rf"device 2: no such camera \({seen}\)"):
        cameras.resolve_device(2, laptop)


def test_a_name_matches_in_every_api_in_order():
    laptop = recorded("snapdragon-x-laptop.json")
    found = cameras.resolve_device("logitech brio", laptop)
    assert [c.api for c in found] == ["mediafoundation", "dshow"]
    assert [c.api for c in cameras.resolve_device("video=Logitech BRIO", laptop)] == [
        "mediafoundation", "dshow"
    ]  # fmt: skip
    unique = laptop[1].devices[0].open_name  # DirectShow's unique name: that API only
    assert [c.api for c in cameras.resolve_device(unique, laptop)] == ["dshow"]
    with pytest.raises(EdgedepthError, match=r"'Front Camera': no camera of that name"):
        cameras.resolve_device("Front Camera", laptop)


def test_without_pywinrt_the_index_counts_in_directshow():
    without = recorded("no-pywinrt.json")
    (camera,) = cameras.resolve_device(0, without)
    assert (camera.api, camera.name) == ("dshow", "Logitech BRIO")
    seen = r"PyWinRT: pip install 'edgedepth\[windows\]'; dshow: 0: Logitech BRIO"
    with pytest.raises(EdgedepthError, match=rf"mediafoundation: Media Foundation .* need {seen}"):
        cameras.resolve_device(1, without)


def test_opening_falls_back_in_order_and_reports_every_attempt():
    usb = cameras.resolve_device(1, recorded("snapdragon-x-laptop.json"))
    tried = []

    def refuses(camera):
        tried.append(camera.api)
        raise EdgedepthError("'Logitech BRIO' did not start: exclusive control not available")

    def opens(camera):
        tried.append(camera.api)
        return f"opened {camera.url('dshow')}"

    opened = cameras.open_first(usb, {"mediafoundation": refuses, "dshow": opens})
    assert tried == ["mediafoundation", "dshow"] and opened.startswith("opened video=@device")
    with pytest.raises(EdgedepthError) as both:
        cameras.open_first(usb, {"mediafoundation": refuses, "dshow": refuses})
    assert str(both.value) == (
        "camera: cannot open 'Logitech BRIO': mediafoundation: 'Logitech BRIO' did not start: "
        "exclusive control not available; dshow: 'Logitech BRIO' did not start: exclusive "
        "control not available"
    )
    assert cameras.camera_apis("win32") == ("mediafoundation", "dshow")
    assert cameras.camera_apis("linux") == ("v4l2",)


def test_pyav_devices_that_need_no_listing():
    assert camera_source.pyav_device("USB Camera", "dshow") == "video=USB Camera"
    assert camera_source.pyav_device("video=USB Camera", "dshow") == "video=USB Camera"
    assert camera_source.pyav_device(1, "v4l2") == "/dev/video1"
    assert camera_source.pyav_device("0", "avfoundation") == "0"


def test_the_listing_people_read():
    lines = cameras.format_listings(recorded("snapdragon-x-laptop.json"), "win32")
    assert lines[:4] == [
        "mediafoundation (Media Foundation, as the Windows Camera app):",
        "  0: Integrated Camera",
        "      NV12: 1920x1080@30, 1280x720@30, 960x540@30, 640x480@30, 640x360@30, 1920x1080@15",
        "  1: Logitech BRIO",
    ]
    assert lines[-3:] == [
        "  0: Logitech BRIO",
        "      yuyv422: 640x480@30, 320x240@30",
        "      mjpeg: 1920x1080@30, 1280x720@60",
    ]
    nothing = [CameraListing("mediafoundation"), CameraListing("dshow", error="boom")]
    lines = cameras.format_listings(nothing, "win32")
    assert lines[1:4] == ["  none found", "dshow (DirectShow, through FFmpeg):",
                          "  cannot list them: boom"]  # fmt: skip
    assert lines[-1].startswith("no camera found:") and "Let desktop apps access" in lines[-1]


def test_edgedepth_cameras_lists_what_this_machine_has():
    result = run_edgedepth("cameras", "--json")
    assert result.returncode == 0, result.stderr
    listings = [CameraListing.from_dict(entry) for entry in json.loads(result.stdout)]
    assert [listing.api for listing in listings] == list(cameras.camera_apis())
    human = run_edgedepth("cameras")
    assert human.returncode == 0 and human.stdout.startswith(f"{listings[0].api} (")


# --- Media Foundation's format ---------------------------------------------------------------


def test_the_format_asked_for_from_what_the_camera_offers():
    builtin, webcam = recorded("snapdragon-x-laptop.json")[0].devices
    offered = list(webcam.formats)
    pick = lambda *asked: choose_format(offered, *asked, (640, 480), 30.0)  # noqa: E731
    assert str(offered[pick(None, None, None)]) == "640x480 30 fps YUY2"  # not MJPG: no decode
    assert str(offered[pick(1280, 720, None)]) == "1280x720 60 fps MJPG"  # the size, any rate
    assert str(offered[pick(640, 480, 15)]) == "640x480 15 fps YUY2"
    with pytest.raises(EdgedepthError, match=r"800x600 is not offered; it offers 1920x1080, "):
        pick(800, 600, None)
    with pytest.raises(EdgedepthError, match=r"60 fps is not offered at that size; it offers 30"):
        pick(640, 480, 60)
    # A camera without 640x480 keeps its own format unless something is asked for.
    wide = [f for f in builtin.formats if (f.width, f.height) != (640, 480)]
    assert choose_format(wide, None, None, None, (640, 480), 30.0) is None
    assert str(wide[choose_format(wide, None, None, 15, (640, 480), 30.0)]) == (
        "1920x1080 15 fps NV12"
    )


# --- SoftwareBitmap planes to RGB ------------------------------------------------------------


def scene(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth colours (chroma subsampling loses little on them)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 1 - x / width], axis=-1) * 200 + 28
    return rgb.astype(np.uint8)


def ffmpeg_planes(rgb: np.ndarray, pixel_format: str) -> np.ndarray:
    """``rgb`` converted by FFmpeg (BT.601, limited range) to a packed frame."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pixel_format, src_colorspace="ITU601", dst_colorspace="ITU601"
    )
    return frame.to_ndarray()


def padded(rows: np.ndarray, stride: int) -> np.ndarray:
    """Rows widened to ``stride`` bytes with junk, as a driver's aligned buffer."""
    out = np.full((rows.shape[0], stride), 255, np.uint8)
    out[:, : rows.shape[1]] = rows
    return out


@pytest.mark.parametrize("stride_padding", [0, 64])
def test_nv12_and_yuy2_to_rgb_match_ffmpeg_with_any_stride(stride_padding):
    rgb = scene()
    height, width = rgb.shape[:2]
    nv12 = ffmpeg_planes(rgb, "nv12")  # (h * 3/2, w): Y rows, then U/V rows
    stride = width + stride_padding
    luma, chroma = padded(nv12[:height], stride), padded(nv12[height:], stride)
    offset = 128  # the chroma plane need not follow the luma rows
    buffer = np.concatenate([luma.ravel(), np.zeros(offset, np.uint8), chroma.ravel()])
    planes = [Plane(0, stride), Plane(luma.size + offset, stride)]
    back = to_rgb(buffer.tobytes(), "NV12", width, height, planes, "ITU601")
    assert np.abs(back.astype(int) - rgb).mean() < 2.5

    yuy2 = ffmpeg_planes(rgb, "yuyv422").reshape(height, 2 * width)
    stride = 2 * width + stride_padding
    back = to_rgb(padded(yuy2, stride).tobytes(), "YUY2", width, height, [Plane(0, stride)],
                  "ITU601")  # fmt: skip
    assert np.abs(back.astype(int) - rgb).mean() < 2.5


def test_yuv_matrices_follow_the_formulas():
    """A flat colour: BT.601 and BT.709 (limited range) give the textbook RGB; Media
    Foundation's default is BT.601 below 720 lines, BT.709 from 720 up."""
    luma, u, v = 120, 90, 190
    for matrix, (kr, kb) in {"ITU601": (0.299, 0.114), "ITU709": (0.2126, 0.0722)}.items():
        kg = 1 - kr - kb
        y = (luma - 16) * 255 / 219
        cb, cr = (u - 128) * 255 / 224, (v - 128) * 255 / 224
        red = y + 2 * (1 - kr) * cr
        blue = y + 2 * (1 - kb) * cb
        green = (y - kr * red - kb * blue) / kg
        expected = np.clip(np.round([red, green, blue]), 0, 255)
        for height in (16, 720):
            width = 16
            chroma = np.tile(np.array([u, v], np.uint8), width * height // 4)
            frame = np.concatenate([np.full(width * height, luma, np.uint8), chroma])
            planes = [Plane(0, width), Plane(width * height, width)]
            explicit = to_rgb(frame, "NV12", width, height, planes, matrix)
            assert np.abs(explicit[4, 4].astype(int) - expected).max() <= 2, (matrix, height)
            default = to_rgb(frame, "NV12", width, height, planes)
            if (matrix == "ITU709") == (height >= 720):
                assert np.array_equal(default, explicit)


def test_bgra8_to_rgb_and_a_plane_too_small():
    rgb = scene(8, 6)
    bgra = np.concatenate([rgb[..., ::-1], np.full((8, 6, 1), 255, np.uint8)], axis=-1)
    stride = 6 * 4 + 8
    back = to_rgb(padded(bgra.reshape(8, 24), stride).tobytes(), "BGRA8", 6, 8, [Plane(0, stride)])
    assert np.array_equal(back, rgb)
    with pytest.raises(ValueError, match="does not fit"):
        to_rgb(bytes(100), "BGRA8", 6, 8, [Plane(0, 24)])
    with pytest.raises(ValueError, match="pixel format P010: not one of NV12, YUY2, BGRA8"):
        to_rgb(bytes(100), "P010", 6, 8, [Plane(0, 24)])


# --- the PyAV camera, for real ---------------------------------------------------------------


def test_pyav_camera_on_a_virtual_device(tmp_path, write_config):
    config = write_config(
        {
            "source": {
                "type": "camera",
                "input_format": "lavfi",
                "device": "testsrc2=size=320x240:rate=30",
            },
            "backend": {"type": "sleepy"},
            "plugins": [str(Path(__file__).parent / "plugins" / "sleepy.py")],
            "sinks": [{"type": "npy", "dir": str(tmp_path / "npy")}],
            "runtime": {"max_frames": 5},
        }
    )
    result = run_edgedepth("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    depth = [np.load(path) for path in sorted((tmp_path / "npy").glob("*.npy"))]
    assert depth and all(d.shape == (240, 320) for d in depth)


def test_a_windows_listing_round_trips_through_json():
    laptop = recorded("snapdragon-x-laptop.json")
    again = [CameraListing.from_dict(json.loads(json.dumps(x.as_dict()))) for x in laptop]
    assert again == laptop
    assert laptop[0].devices[1].formats[0] == CameraFormat(1920, 1080, 30.0, "MJPG")
