"""The numpy resizes against the implementations they reproduce: OpenCV's ``cv2.resize`` and
torch's ``interpolate(align_corners=True)``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgedepth.media.imageops import axis_table, resize

# (source, destination) sizes: up and down, odd, one-pixel edges, integer factors (OpenCV's fast
# area path), the official 480×640 → 518×686.
SIZES = [
    ((480, 640), (518, 686)),
    ((425, 640), (518, 780)),
    ((7, 5), (13, 11)),
    ((13, 11), (7, 5)),
    ((1, 9), (4, 3)),
    ((9, 1), (3, 4)),
    ((5, 7), (1, 1)),
    ((6, 9), (3, 3)),
    ((9, 9), (3, 3)),
    ((10, 7), (4, 14)),
    ((33, 47), (33, 20)),
    ((2, 2), (5, 5)),
    ((100, 3), (41, 2)),
]
METHODS = ["bicubic", "bilinear", "nearest", "area"]


@pytest.fixture
def cv2_without_ipp():
    """OpenCV's own code: the x86 wheels route float32 cubic and float linear resizes to Intel
    IPP, which rounds differently (up to 1e-4 of the range), so the same call gives other
    numbers on an ARM build. The float64 cubic the official DAv2 code runs never goes to IPP."""
    cv2 = pytest.importorskip("cv2", reason="the reference is OpenCV itself")
    cv2.ipp.setUseIPP(False)
    yield cv2
    cv2.ipp.setUseIPP(True)


def opencv_flag(cv2, method: str) -> int:
    return {
        "bicubic": cv2.INTER_CUBIC,
        "bilinear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
        "area": cv2.INTER_AREA,
    }[method]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_resize_computes_what_opencv_computes(cv2_without_ipp, method, dtype):
    cv2 = cv2_without_ipp
    rng = np.random.default_rng(0)
    for (source, target), channels in itertools.product(SIZES, (3, 1)):
        shape = source + ((channels,) if channels > 1 else ())
        image = (rng.random(shape) * 255).astype(dtype)
        expected = cv2.resize(image, target[::-1], interpolation=opencv_flag(cv2, method))
        ours = resize(image, target, method)
        assert ours.dtype == dtype and ours.shape == expected.shape
        # float64: the same operations in the same order (exact); float32: OpenCV's SIMD
        # cubic sums with fused multiply-adds, one rounding apart.
        tolerance = 0.0 if dtype == np.float64 else 1e-6 * 255
        assert np.abs(ours - expected).max() <= tolerance, (source, target, channels)


def test_official_preprocessing_resize_is_exact_with_the_default_opencv(tmp_path):
    """The official ``infer_image`` resizes RGB / 255 (float64) with INTER_CUBIC: the same
    numbers as ours, bit for bit, with OpenCV as installed (IPP on)."""
    cv2 = pytest.importorskip("cv2", reason="the reference is OpenCV itself")
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    official = cv2.resize(rgb / 255.0, (686, 518), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(resize(rgb / 255.0, (518, 686), "bicubic"), official)
    # On the 0–255 scale in float32 (what the pipeline hands the graph): to float precision.
    ours = resize(rgb, (518, 686), "bicubic") / np.float32(255)
    assert np.abs(ours - official).max() < 1e-6


def test_align_corners_computes_what_torch_computes():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for source, target in [*SIZES, ((518, 686), (480, 640)), ((37, 37), (126, 300))]:
        depth = (rng.standard_normal(source) * 10).astype(np.float32)
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(depth)[None, None], size=target, mode="bilinear", align_corners=True
        )[0, 0].numpy()
        ours = resize(depth, target, "bilinear", align_corners=True)
        assert ours.shape == target
        assert np.abs(ours - expected).max() <= 2e-7 * np.abs(expected).max(), (source, target)


def test_cubic_overshoot_is_kept_and_uint8_is_resized_as_float():
    step = np.zeros((4, 8, 3), np.uint8)
    step[:, 4:] = 255
    resized = resize(step, (4, 20), "bicubic")
    assert resized.dtype == np.float32
    assert resized.min() < 0 and resized.max() > 255  # not clipped, not rounded
    assert np.array_equal(resized, resize(step.astype(np.float32), (4, 20), "bicubic"))


def test_tables_are_cached_per_size_and_method():
    first = axis_table(640, 686, "bicubic")
    assert axis_table(640, 686, "bicubic") is first
    assert axis_table(640, 686, "bilinear") is not first
    assert first.index.shape == first.weight.shape == (4, 686)
    np.testing.assert_allclose(first.weight.sum(axis=0), 1.0, atol=1e-6)
