"""``edgedepth eval`` and the LPCVC metrics: hand-computed cases, the challenge's pixel-order
quirk, masks, the three ways in through the real CLI, and one-line errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgedepth.evaluation.metrics import (
    Intrinsics,
    backproject,
    depth_errors,
    evaluate_image,
    pointcloud_metrics,
)
from edgedepth.media.synthetic_scene import SyntheticScene
from tests.conftest import SLEEPY, run_edgedepth

UNIT_CAMERA = Intrinsics(fx=1.0, fy=1.0, cx=0.0, cy=0.0)

#: A test plugin (written next to each config): a postprocessor that replaces the backend's
#: output with the frame's ground truth, optionally scaled or as disparity.
ORACLE_PLUGIN = """
import numpy as np
import edgedepth
from edgedepth.api.options import StrictModel


class OracleOptions(StrictModel):
    scale: float = 1.0
    kind: edgedepth.DepthKind = edgedepth.DepthKind.METRIC_METERS


class Oracle:
    def __init__(self, options, context):
        self.options = options

    def process(self, frame):
        depth = frame.ground_truth * np.float32(self.options.scale)
        if self.options.kind == edgedepth.DepthKind.RELATIVE_DISPARITY:
            depth = 1.0 / depth
        frame.depth = depth.astype(np.float32)
        frame.depth_kind = self.options.kind
        return frame


@edgedepth.hookimpl
def register_postprocessors(register):
    register("oracle", OracleOptions, Oracle, description="test: the ground truth")
"""


def save_depth_png(path: Path, meters: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    millimetres = np.round(meters * 1000).astype(np.uint16)
    Image.fromarray(millimetres).save(path)
    assert np.asarray(Image.open(path)).dtype == np.uint16  # really 16-bit


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def ramp(height: int, width: int, near: float = 1.0, far: float = 5.0) -> np.ndarray:
    """Depth in whole millimetres, growing left to right and top to bottom."""
    y, x = np.mgrid[0:height, 0:width]
    depth = near + (far - near) * (0.7 * x / (width - 1) + 0.3 * y / (height - 1))
    return np.round(depth * 1000) / 1000


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as file:
        return {row["image"]: row for row in csv.DictReader(file)}


def error_line(result) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- the metrics, by hand ---------------------------------------------------------------------


def test_identical_depth_is_perfect():
    gt = ramp(24, 32).astype(np.float32)
    metrics = evaluate_image(gt.copy(), gt).metrics
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log"):
        assert metrics[name] == 0.0, name
    for name in ("a1", "a2", "a3"):
        assert metrics[name] == 1.0, name
    # The challenge reports F-score and IoU in percent (F = 100 · 2PR/(P+R)).
    for name in ("fscore", "iou", "fscore_20", "iou_20"):
        assert metrics[name] == 100.0, name


def test_constant_offset_by_hand():
    gt = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    # Without median scaling: |gt - pred| = 0.5 everywhere.
    errors = depth_errors(gt, gt + 0.5, None)
    assert errors["abs_rel"] == pytest.approx((0.5 / 1 + 0.5 / 2 + 0.5 / 3) / 3)  # 11/36
    assert errors["rmse"] == pytest.approx(0.5)
    assert errors["sq_rel"] == pytest.approx((0.25 / 1 + 0.25 / 2 + 0.25 / 3) / 3)
    assert errors["a1"] == pytest.approx(1 / 3)  # ratios 1.5, 1.25 (not < 1.25), 7/6
    # The challenge's way: pred = gt + 1 = [2, 3, 4] is first scaled by median(gt)/median(pred)
    # = 2/3 to [4/3, 2, 8/3], so |gt - pred| = [1/3, 0, 1/3].
    evaluation = evaluate_image(gt + 1.0, gt, intrinsics=UNIT_CAMERA)
    metrics = evaluation.metrics
    assert evaluation.scale == pytest.approx(2 / 3)
    assert metrics["abs_rel"] == pytest.approx((1 / 3 + 0 + 1 / 9) / 3, rel=1e-6)  # 4/27
    assert metrics["sq_rel"] == pytest.approx((1 / 9 + 0 + 1 / 27) / 3, rel=1e-6)  # 4/81
    assert metrics["rmse"] == pytest.approx(math.sqrt(2 / 27), rel=1e-6)
    expected_log = math.sqrt((math.log(3 / 4) ** 2 + math.log(9 / 8) ** 2) / 3)
    assert metrics["rmse_log"] == pytest.approx(expected_log, rel=1e-6)
    assert metrics["a1"] == pytest.approx(2 / 3)  # ratios 4/3, 1, 9/8
    assert metrics["a2"] == metrics["a3"] == 1.0


def test_median_scaling_recovers_a_scale_of_three():
    gt = ramp(24, 32).astype(np.float32)
    evaluation = evaluate_image(3.0 * gt, gt)
    assert evaluation.scale == pytest.approx(1 / 3)
    assert evaluation.metrics["abs_rel"] < 1e-6
    assert evaluation.metrics["a1"] == 1.0
    assert evaluation.metrics["fscore"] == 100.0


def test_pixel_order_quirk_versus_corrected_geometry():
    # 2×3 map holding 1..6 in row-major order, unit camera: a point is (x·z, y·z, z).
    depth = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    corrected = backproject(depth, UNIT_CAMERA, "corrected")
    lpcvc = backproject(depth, UNIT_CAMERA, "lpcvc")
    # Corrected: value k sits at its own pixel (x = k % W, y = k // W).
    corrected_xy = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    # The challenge: meshgrid(arange(W), arange(H)) flattened gives x = k // H, y = k % H.
    lpcvc_xy = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    for points, pixels in ((corrected, corrected_xy), (lpcvc, lpcvc_xy)):
        expected = [(x * z, y * z, z) for (x, y), z in zip(pixels, range(1, 7), strict=True)]
        np.testing.assert_array_equal(points, np.array(expected, dtype=np.float32))

    # One prediction 6 % too far at k = 2. Its ray has length √5 at its real pixel (2, 0) but
    # √2 where the challenge puts it, (1, 0): it misses by 0.134 m vs 0.085 m (threshold 0.1).
    gt = np.ones((2, 3), dtype=np.float32)
    pred = gt.copy()
    pred[0, 2] = 1.06
    mask = np.ones((2, 3), dtype=bool)
    assert pointcloud_metrics(pred, gt, mask, UNIT_CAMERA, "lpcvc")["fscore"] == 100.0
    corrected_metrics = pointcloud_metrics(pred, gt, mask, UNIT_CAMERA, "corrected")
    assert corrected_metrics["fscore"] == pytest.approx(100 * 5 / 6)  # P = R = 5/6
    assert corrected_metrics["iou"] == pytest.approx(100 * 5 / 7)  # PR / (P + R - PR)


def test_masks_exclude_pixels():
    gt = np.full((20, 30), 2.0, dtype=np.float32)
    pred = gt.copy()
    pred[:4] = 50.0  # 120 of 600 pixels wildly wrong; the median stays 2 m
    conf = np.full(gt.shape, 2, dtype=np.uint8)
    conf[:4] = 0
    metrics = evaluate_image(pred, gt, conf).metrics
    assert metrics["abs_rel"] == 0.0 and metrics["fscore"] == 100.0
    # conf 1: still counted by the errors (conf >= 1), not by the F-score (conf == 2 exists).
    conf[:4] = 1
    metrics = evaluate_image(pred, gt, conf).metrics
    assert metrics["abs_rel"] == pytest.approx(120 / 600 * 48 / 2)
    assert metrics["a1"] == pytest.approx(480 / 600)
    assert metrics["fscore"] == 100.0
    # Without any conf 2, the conf 1 pixels are the point cloud.
    conf[4:] = 1
    assert evaluate_image(pred, gt, conf).metrics["fscore"] < 100.0


def test_a_480x640_frame_with_noise_scores_below_perfect():
    # How long this takes is measured by bench/eval_speed.py, not asserted here.
    _, depth = SyntheticScene(width=640, height=480).render(0)
    noise = np.random.default_rng(0).normal(1.0, 0.05, depth.shape).astype(np.float32)
    conf = np.full(depth.shape, 2, dtype=np.uint8)
    metrics = evaluate_image(depth * noise, depth, conf).metrics
    assert 0 < metrics["fscore"] < 100
    assert metrics["a1"] > 0.99 and 0.01 < metrics["abs_rel"] < 0.1


# --- the command line ---------------------------------------------------------------------------


def test_pred_gt_files_with_masks_out_and_figures(tmp_path):
    """The challenge's layout: gt/raw/NAME.png with masks in gt/conf/NAME.png."""
    gt = ramp(24, 32)
    save_depth_png(tmp_path / "gt" / "raw" / "a.png", gt)
    save_depth_png(tmp_path / "gt" / "raw" / "b.png", gt[::-1])
    conf = np.full(gt.shape, 2, dtype=np.uint8)
    conf[:, :5] = 0  # hides the broken columns of b below
    save_png(tmp_path / "gt" / "conf" / "a.png", conf)
    save_png(tmp_path / "gt" / "conf" / "b.png", conf)
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    # a: exact metres at twice the resolution, LPCVC (1,1,H,W); b: depth × 3 as (H, W).
    np.save(pred_dir / "a.npy", np.kron(gt, np.ones((2, 2)))[None, None].astype(np.float32))
    broken = 3.0 * gt[::-1]
    broken[:, :5] = 0.01
    np.save(pred_dir / "b.npy", broken.astype(np.float32))
    out = tmp_path / "out"
    result = run_edgedepth(
        "eval", "--pred", str(pred_dir), "--gt", str(tmp_path / "gt" / "raw"), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    header, values = result.stdout.strip().splitlines()
    mean = dict(zip(header.split(), values.split(), strict=True))
    assert mean["images"] == "2"
    assert float(mean["abs_rel"]) < 1e-5 and float(mean["a1"]) == 1.0
    assert float(mean["fscore"]) == 100.0
    assert "gt/conf" in result.stderr  # which masks were used is reported
    rows = read_rows(out / "metrics.csv")
    assert set(rows) == {"a", "b", "mean"}
    assert float(rows["b"]["scale"]) == pytest.approx(1 / 3, rel=1e-3)
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["geometry"] == "lpcvc"
    assert [row["image"] for row in report["images"]] == ["a", "b"]
    assert report["mean"]["fscore"] == 100.0
    figure = np.asarray(Image.open(out / "figures" / "a.png"))
    assert figure.shape[0] == 48 and figure.shape[1] > 4 * 64  # 4 panels + colour bar


def test_no_masks_and_corrected_geometry_option(tmp_path):
    gt = ramp(12, 16)
    save_depth_png(tmp_path / "depth" / "x.png", gt)
    (tmp_path / "pred").mkdir()
    np.save(tmp_path / "pred" / "x.npy", (gt * 1.02).astype(np.float32))
    result = run_edgedepth(
        "eval",
        *("--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "depth")),
        *("--geometry", "corrected", "--intrinsics", "500,500,8,6"),
    )
    assert result.returncode == 0, result.stderr
    assert "masks: none" in result.stderr and "geometry corrected" in result.stderr


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("count", "3 .npy predictions in"),
        ("names", "no ground truth for c.npy"),
        ("pred-shape", "a.npy: prediction of shape (2, 12, 16)"),
        ("pred-empty", "a.npy: prediction of shape (0, 0)"),
        ("conf-shape", "conf/a.png: confidence mask is 8×6 but"),
        ("aspect", "b.npy: prediction is 16×16 but"),
        ("not-16-bit", "a.png: ground-truth depth must be a single-channel integer PNG"),
    ],
)
def test_mismatches_are_one_line_errors(tmp_path, setup, expected):
    gt = ramp(12, 16)
    for name in ("a", "b"):
        save_depth_png(tmp_path / "gt" / "raw" / f"{name}.png", gt)
        save_png(tmp_path / "gt" / "conf" / f"{name}.png", np.full(gt.shape, 2, np.uint8))
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for name in ("a", "b"):
        np.save(pred_dir / f"{name}.npy", gt.astype(np.float32))
    if setup == "count":
        np.save(pred_dir / "c.npy", gt.astype(np.float32))
    elif setup == "names":
        (pred_dir / "b.npy").rename(pred_dir / "c.npy")
    elif setup == "pred-shape":
        np.save(pred_dir / "a.npy", np.stack([gt, gt]).astype(np.float32))
    elif setup == "pred-empty":
        np.save(pred_dir / "a.npy", np.zeros((0, 0), np.float32))
    elif setup == "conf-shape":
        save_png(tmp_path / "gt" / "conf" / "a.png", np.full((6, 8), 2, np.uint8))
    elif setup == "aspect":
        np.save(pred_dir / "b.npy", np.ones((16, 16), np.float32))
    elif setup == "not-16-bit":
        save_png(tmp_path / "gt" / "raw" / "a.png", np.zeros((12, 16, 3), np.uint8))
    result = run_edgedepth("eval", "--pred", str(pred_dir), "--gt", str(tmp_path / "gt" / "raw"))
    line = error_line(result)
    assert expected in line, line
    if setup == "count":
        assert "2 ground-truth PNGs in" in line and "c.npy" in line


def test_wrong_option_combinations_are_one_line_errors(tmp_path):
    assert "--pred and --gt go together" in error_line(
        run_edgedepth("eval", "--pred", str(tmp_path))
    )
    assert "exactly one of --data DIR or --synthetic N" in error_line(
        run_edgedepth("eval", "--config", str(tmp_path / "x.yaml"))
    )
    assert "--figures" in error_line(
        run_edgedepth("eval", "--pred", str(tmp_path), "--gt", str(tmp_path), "--figures", "2")
    )


def write_synthetic_config(tmp_path: Path, postprocess: list[dict]) -> Path:
    (tmp_path / "oracle.py").write_text(ORACLE_PLUGIN)
    config = {
        "plugins": [SLEEPY, "oracle.py"],
        "source": {"type": "synthetic", "frames": 300, "width": 64, "height": 48, "seed": 3},
        "backend": {"type": "sleepy"},
        "postprocess": postprocess,
        "sinks": [{"type": "npy", "dir": "never-written"}],
        "runtime": {"summary": False},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(json.dumps(config))
    return path


def mean_of(stdout: str) -> dict[str, float]:
    header, values = stdout.strip().splitlines()
    return {name: float(value) for name, value in zip(header.split(), values.split(), strict=True)}


def test_synthetic_ground_truth_scores_perfectly(tmp_path):
    # The oracle outputs ground truth × 3 as relative depth: median scaling makes it exact.
    config = write_synthetic_config(
        tmp_path, [{"type": "oracle", "scale": 3.0, "kind": "relative-depth"}]
    )
    out = tmp_path / "out"
    result = run_edgedepth(
        "eval", "--config", str(config), "--synthetic", "3", "--out", str(out), "--figures", "all"
    )
    assert result.returncode == 0, result.stderr
    mean = mean_of(result.stdout)
    assert mean["images"] == 3
    assert mean["abs_rel"] < 1e-5 and mean["a1"] == 1.0 and mean["fscore"] == 100.0
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    assert not (tmp_path / "never-written").exists()  # the config's sinks are replaced
    # The frames' own camera and the geometric pixel order: still perfect.
    result = run_edgedepth(
        "eval",
        *("--config", str(config), "--synthetic", "2"),
        *("--geometry", "corrected", "--intrinsics", "source"),
    )
    assert result.returncode == 0, result.stderr
    assert mean_of(result.stdout)["fscore"] == 100.0


def test_synthetic_disparity_conversions(tmp_path):
    config = write_synthetic_config(tmp_path, [{"type": "oracle", "kind": "relative-disparity"}])
    args = ("eval", "--config", str(config), "--synthetic", "2", "--disparity-to-depth")
    reciprocal = run_edgedepth(*args, "reciprocal")
    assert reciprocal.returncode == 0, reciprocal.stderr
    assert mean_of(reciprocal.stdout)["abs_rel"] < 1e-5
    assert "relative disparity converted by reciprocal" in reciprocal.stderr
    # LPCVC's 1 - minmax(d) is not proportional to depth: median scaling cannot repair it.
    inverted = run_edgedepth(*args, "invert")
    assert inverted.returncode == 0, inverted.stderr
    assert mean_of(inverted.stdout)["abs_rel"] > 0.01


def test_data_folder_runs_the_config_and_keeps_predictions(tmp_path):
    """DIR/rgb, DIR/depth (half resolution, resized by nearest neighbour), DIR/conf; the sleepy
    backend's output (mean of RGB × 0.1) is the depth exactly when grey level = decimetres."""
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("img2", "img10", "img1"):  # natural order: img1, img2, img10
        decimetres = rng.integers(10, 60, (12, 16)).astype(np.uint8)
        grey = np.kron(decimetres, np.ones((2, 2), np.uint8))
        save_png(data / "rgb" / f"{name}.png", np.repeat(grey[..., None], 3, axis=2))
        save_depth_png(data / "depth" / f"{name}.png", decimetres / 10.0)
        save_png(data / "conf" / f"{name}.png", np.full((12, 16), 2, np.uint8))
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        json.dumps(
            {
                "plugins": [SLEEPY],
                "source": {"type": "synthetic"},
                "backend": {"type": "sleepy", "kind": "metric-meters", "scale": 0.1},
                "runtime": {"summary": False},
            }
        )
    )
    out = tmp_path / "out"
    result = run_edgedepth(
        "eval", "--config", str(config), "--data", str(data), "--out", str(out), "--figures", "1"
    )
    assert result.returncode == 0, result.stderr
    mean = mean_of(result.stdout)
    assert mean["images"] == 3 and mean["abs_rel"] < 1e-6 and mean["fscore"] == 100.0
    assert list(read_rows(out / "metrics.csv")) == ["img1", "img2", "img10", "mean"]
    assert [p.name for p in (out / "figures").iterdir()] == ["img1.png"]
    predictions = sorted(p.name for p in (out / "predictions").iterdir())
    assert predictions == ["img1.npy", "img10.npy", "img2.npy"]
    assert np.load(out / "predictions" / "img1.npy").shape == (1, 1, 24, 32)
    # The kept predictions score the same through --pred/--gt.
    again = run_edgedepth("eval", "--pred", str(out / "predictions"), "--gt", str(data / "depth"))
    assert again.returncode == 0, again.stderr
    assert mean_of(again.stdout) == mean
    # A missing ground truth is named before anything runs.
    (data / "depth" / "img10.png").unlink()
    line = error_line(run_edgedepth("eval", "--config", str(config), "--data", str(data)))
    assert "no ground truth for img10.png" in line
