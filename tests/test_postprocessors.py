from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edgedepth.api.frame import DepthKind, Frame
from edgedepth.plugins.postprocessors import (
    Invert,
    InvertOptions,
    Normalize,
    NormalizeOptions,
    align_scale_shift,
)
from tests.conftest import run_edgedepth

JITTERY = str(Path(__file__).parent / "plugins" / "jittery.py")


def frame_with(depth: np.ndarray, kind: DepthKind) -> Frame:
    image = np.zeros((*depth.shape, 3), np.uint8)
    return Frame(index=0, timestamp=0.0, image=image, captured_at=0.0, depth=depth, depth_kind=kind)


def test_invert_is_the_lpcvc_convention():
    disparity = np.array([[4.0, 2.0], [1.0, 3.0]], np.float32)  # 4 = nearest
    frame = Invert(InvertOptions(), None).process(
        frame_with(disparity, DepthKind.RELATIVE_DISPARITY)
    )
    np.testing.assert_allclose(frame.depth, [[0.0, 2 / 3], [1.0, 1 / 3]], rtol=1e-6)
    assert frame.depth_kind == DepthKind.RELATIVE_DEPTH


def test_percentile_normalize_ignores_outliers():
    depth = np.linspace(0, 1, 10000, dtype=np.float32).reshape(100, 100)
    depth[0, 0] = 1000.0
    out = Normalize(NormalizeOptions(method="percentile", percentiles=(1, 99)), None).process(
        frame_with(depth, DepthKind.RELATIVE_DEPTH)
    )
    assert out.depth.max() == 1.0 and np.median(out.depth) == pytest.approx(0.5, abs=0.01)


def test_align_scale_shift_recovers_an_affine_change():
    reference = np.random.default_rng(0).uniform(1, 5, (64, 64)).astype(np.float32)
    np.testing.assert_allclose(
        align_scale_shift(reference * 2.5 - 1.0, reference), reference, atol=1e-4
    )


def flicker(directory: Path) -> float:
    """Mean absolute frame-to-frame change, relative to the mean depth level."""
    maps = [np.load(p) for p in sorted(directory.glob("*.npy"))]
    aligned = [maps[0]] + [align_scale_shift(m, maps[0]) for m in maps[1:]]
    changes = [np.abs(b - a).mean() for a, b in itertools.pairwise(aligned[5:])]
    return float(np.mean(changes) / np.abs(aligned[0]).mean())


@pytest.mark.parametrize("kind", ["relative-disparity", "metric-meters"])
def test_temporal_smoothing_halves_flicker_on_a_static_scene(tmp_path, write_config, kind):
    base = {
        "plugins": [JITTERY],
        "source": {
            "type": "synthetic",
            "frames": 40,
            "width": 96,
            "height": 64,
            "motion": "static",
        },
        "backend": {"type": "jittery", "kind": kind},
    }
    write_config({**base, "sinks": [{"type": "npy", "dir": "raw"}]}, "raw.yaml")
    write_config(
        {
            **base,
            "postprocess": [{"type": "temporal"}],
            "sinks": [{"type": "npy", "dir": "smooth"}],
        },
        "smooth.yaml",
    )
    for name in ("raw.yaml", "smooth.yaml"):
        result = run_edgedepth("run", "--config", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    raw, smooth = flicker(tmp_path / "raw"), flicker(tmp_path / "smooth")
    print(f"{kind}: flicker raw {raw:.4f}, smoothed {smooth:.4f}, ratio {raw / smooth:.2f}")
    assert raw > 2 * smooth
