from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.stages import BuildContext
from edgedepth.plugins.images_source import ImagesOptions, ImagesSource
from edgedepth.plugins.resize_policies import (
    KeepAspectOptions,
    KeepAspectResize,
    LetterboxOptions,
    LetterboxResize,
    keep_aspect_size,
)
from edgedepth.plugins.video_source import VideoOptions, VideoSource


def context(tmp_path: Path) -> BuildContext:
    return BuildContext(config_path=tmp_path / "c.yaml", mode="file", cache_dir=tmp_path)


def write_video(path: Path, frames: int, rate: Fraction) -> list[np.ndarray]:
    images = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            images.append(image)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return images


def test_video_source_reads_every_frame_with_timestamps(tmp_path):
    write_video(tmp_path / "clip.mp4", 10, Fraction(30000, 1001))
    source = VideoSource(VideoOptions(path=tmp_path / "clip.mp4"), context(tmp_path))
    assert (source.info.width, source.info.height, source.info.live) == (64, 48, False)
    assert source.info.fps == pytest.approx(29.97, abs=0.01)
    frames = list(source.frames())
    source.close()
    assert [f.index for f in frames] == list(range(10))
    assert frames[3].timestamp == pytest.approx(3 * 1001 / 30000, abs=1e-3)
    assert abs(int(frames[5].image.mean()) - 100) <= 2


def test_images_source_natural_order_and_glob(tmp_path):
    for i in (10, 2, 1):
        Image.fromarray(np.full((8, 12, 3), i, np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    source = ImagesSource(ImagesOptions(path=str(tmp_path)), context(tmp_path))
    assert [p.name for p in source.paths] == ["img1.png", "img2.png", "img10.png"]
    assert [int(f.image[0, 0, 0]) for f in source.frames()] == [1, 2, 10]
    globbed = ImagesSource(ImagesOptions(path="img1*.png"), context(tmp_path))
    assert [p.name for p in globbed.paths] == ["img1.png", "img10.png"]
    with pytest.raises(EdgedepthError, match="no images found"):
        ImagesSource(ImagesOptions(path="*.jpg"), context(tmp_path))


def test_keep_aspect_matches_official_dav2_sizes():
    assert keep_aspect_size(480, 640, 518, 14) == (518, 686)
    assert keep_aspect_size(518, 518, 518, 14) == (518, 518)
    assert keep_aspect_size(1080, 1920, 518, 14) == (518, 924)
    policy = KeepAspectResize(KeepAspectOptions(), None)
    resized, _ = policy.apply(np.zeros((480, 640, 3), np.uint8))
    assert resized.shape == (518, 686, 3)


def test_letterbox_pads_and_unpads():
    policy = LetterboxResize(LetterboxOptions(width=100, height=100, pad_value=7), None)
    image = np.full((50, 100, 3), 200, np.uint8)
    boxed, state = policy.apply(image)
    assert boxed.shape == (100, 100, 3)
    assert (boxed[:25] == 7).all() and (boxed[25:75] == 200).all() and (boxed[75:] == 7).all()
    # A depth map that is NaN on the padding: restoring must cut the padding off entirely.
    depth = np.full((100, 100), np.nan, np.float32)
    depth[25:75] = 3.0
    restored = policy.restore(depth, (50, 100), state)
    assert restored.shape == (50, 100)
    np.testing.assert_allclose(restored, 3.0)
    # Same at another output resolution (a backend may output at a different size).
    small = np.full((50, 50), np.nan, np.float32)
    small[12:37] = 2.0
    np.testing.assert_allclose(policy.restore(small, (50, 100), state), 2.0)


def test_images_source_turns_photos_upright_and_keeps_each_size(tmp_path):
    """EXIF orientation is applied (OpenCV's imread does it for the official scripts), and
    images of different sizes each keep their own."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    rotated = Image.fromarray(pixels)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated.save(tmp_path / "a.png", exif=exif)
    Image.fromarray(pixels[:20]).save(tmp_path / "b.png")
    source = ImagesSource(ImagesOptions(path=str(tmp_path)), context(tmp_path))
    assert (source.info.height, source.info.width) == (60, 40)
    upright, small = (frame.image for frame in source.frames())
    assert np.array_equal(upright, np.rot90(pixels, k=-1))
    assert small.shape == (20, 60, 3)
