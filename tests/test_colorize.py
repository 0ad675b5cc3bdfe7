"""Colourising: the quantised lookup gives the colours of the float formula."""

from __future__ import annotations

import numpy as np
import pytest

from edgedepth.api.frame import DepthKind
from edgedepth.media.colorize import COLORMAPS, colorize, colormap


def float_index(depth: np.ndarray, kind: DepthKind, low: float, high: float) -> np.ndarray:
    """The per-pixel float64 formula colorize used before its quantised lookup."""
    scaled = np.clip(np.nan_to_num((depth - low) / max(high - low, 1e-12), nan=0.0), 0.0, 1.0)
    nearness = scaled if kind == DepthKind.RELATIVE_DISPARITY else 1.0 - scaled
    return (nearness * 255.0 + 0.5).astype(np.uint8)


def assert_same_colours(rgb: np.ndarray, index: np.ndarray, name: str) -> None:
    """Equal to the float formula's colours; a value on a bin edge (float32 vs float64
    rounding) may take the neighbouring bin, at most 1 pixel in 10 000."""
    table = colormap(name).astype(int)
    differing = (rgb != table[index]).any(axis=-1)
    assert differing.sum() <= max(1, index.size // 10_000), differing.sum()
    neighbours = [table[np.clip(index[differing].astype(int) + step, 0, 255)] for step in (-1, 1)]
    assert all(
        (pixel == below).all() or (pixel == above).all()
        for pixel, below, above in zip(rgb[differing], *neighbours, strict=True)
    )


@pytest.mark.parametrize("kind", list(DepthKind))
@pytest.mark.parametrize("name", COLORMAPS)
def test_colours_equal_the_float_formula(kind: DepthKind, name: str) -> None:
    rng = np.random.default_rng(3)
    depth = (rng.random((480, 640)) * 12 - 1).astype(np.float32)
    depth[0, :7] = np.nan
    depth[1, :5], depth[1, 5:9] = np.inf, -np.inf
    for low, high in ((0.0, 10.0), (0.37, 7.91), (2.0, 2.0), (-3.0, 30.0)):
        expected = float_index(depth.astype(np.float64), kind, low, high)
        rgb = colorize(depth, kind, low, high, name)
        rgba = colorize(depth, kind, low, high, name, channels=4)
        assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
        assert rgba.shape == (480, 640, 4) and (rgba[..., 3] == 255).all()
        np.testing.assert_array_equal(rgba[..., :3], rgb)
        assert_same_colours(rgb, expected, name)
        table = colormap(name)
        np.testing.assert_array_equal(rgb[:2, :9], table[expected[:2, :9]])  # NaN and ±inf


def test_float64_input_and_odd_shapes() -> None:
    depth = np.random.default_rng(5).random((7, 13)) * 5.0  # float64
    expected = float_index(depth, DepthKind.METRIC_METERS, 0.0, 5.0)
    assert_same_colours(
        colorize(depth, DepthKind.METRIC_METERS, 0.0, 5.0, "inferno"), expected, "inferno"
    )
