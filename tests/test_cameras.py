"""Cameras without OpenCV: on Windows `device: 0` resolves to the camera's DirectShow name,
listed through FFmpeg (device lists of several FFmpeg versions in tests/data/dshow: the 1.0 and
3.2 ones copied from published listings, the 3.2 one's spacing restored from the format strings
of libavdevice/dshow.c, and the 5.0+ one written from those format strings, not recorded from a
real FFmpeg; each file's header says which); the PyAV camera runs for real on FFmpeg's virtual
lavfi device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedepth.api.errors import EdgedepthError
from edgedepth.media import cameras
from edgedepth.plugins import camera_source
from tests.conftest import run_edgedepth

RECORDED = Path(__file__).parent / "data" / "dshow"


def listing(name: str) -> list[cameras.CameraDevice]:
    return cameras.parse_dshow_list((RECORDED / name).read_text(encoding="utf-8"))


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


def test_an_index_opens_the_camera_by_its_unique_directshow_name():
    recorded = listing("ffmpeg-6.txt")
    second_twin = camera_source._device_string(2, "dshow", lambda: recorded)
    assert second_twin == f"video={recorded[2].open_name}" and "5e6f7a8b" in second_twin
    assert camera_source._device_string("0", "dshow", lambda: recorded) == (
        f"video={recorded[0].open_name}"
    )
    # A name works as is, with or without FFmpeg's "video=".
    assert camera_source._device_string("USB Camera", "dshow") == "video=USB Camera"
    assert camera_source._device_string("video=USB Camera", "dshow") == "video=USB Camera"
    with pytest.raises(EdgedepthError, match=r"device 7: DirectShow lists 4 camera\(s\) \(0: "):
        camera_source._device_string(7, "dshow", lambda: recorded)
    assert camera_source._device_string(1, "v4l2") == "/dev/video1"


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
