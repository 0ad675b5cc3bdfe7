"""The LPCVC 2025 Track 3 depth metrics, reproduced step by step (numpy and scipy only).

Per image, as the challenge's ``evaluate_track3.py`` does: zeros become 1e-5, the prediction is
median-scaled to the ground truth, the classic errors are taken over pixels with ``conf >= 1``,
and the point-cloud F-score compares back-projected predicted and ground-truth points (Örnek et
al. 2022) by nearest neighbours at 0.10 m (and 0.20 m). Numbers are float32 where the script's
are, so the leaderboard's values come out.

Geometry of the back-projection (``geometry``):

- ``lpcvc``: the challenge's pixel grid comes from ``torch.meshgrid(arange(W), arange(H))``
  ('ij' indexing) flattened, while depth and mask are flattened row-major (H, W). The k-th
  depth value (row ``k // W``, column ``k % W``) is therefore placed at pixel
  ``x = k // H, y = k % H``. Reproduced as is, for leaderboard parity.
- ``corrected``: the k-th depth value is placed at its own pixel, ``x = k % W, y = k // W``.

Both use integer pixel coordinates and the intrinsics as given (the challenge applies its
1920×1440 camera matrix unchanged to the 640×480 grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgedepth.api.frame import Intrinsics as CameraIntrinsics

Geometry = Literal["lpcvc", "corrected"]
GEOMETRIES: tuple[Geometry, ...] = ("lpcvc", "corrected")

#: What a zero (no depth) becomes in prediction and ground truth before anything else.
ZERO_REPLACEMENT = 1e-5
#: Point-to-point distances (metres) under which a point counts as correct.
FSCORE_THRESHOLD = 0.10
FSCORE_THRESHOLD_WIDE = 0.20

#: Every number reported per image, in the order of the table (F-score and IoU in percent).
METRIC_NAMES = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "a1",
    "a2",
    "a3",
    "fscore",
    "iou",
    "fscore_20",
    "iou_20",
)


@dataclass(frozen=True)
class Intrinsics(CameraIntrinsics):
    """Pinhole camera: focal lengths and principal point, in pixels (written and parsed as
    ``fx,fy,cx,cy`` on the command line)."""

    @classmethod
    def parse(cls, text: str) -> Intrinsics:
        """``"fx,fy,cx,cy"`` → :class:`Intrinsics`; ``ValueError`` naming the text otherwise."""
        parts = [part.strip() for part in text.split(",")]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(np.isfinite(values)) or values[0] <= 0 or values[1] <= 0:
            raise ValueError(f"expected fx,fy,cx,cy (four numbers, fx and fy > 0), got {text!r}")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.fx:.10g},{self.fy:.10g},{self.cx:.10g},{self.cy:.10g}"


#: The challenge's fixed camera (a 1920×1440 iPhone LiDAR capture's K).
LPCVC_INTRINSICS = Intrinsics(fx=1591.1095, fy=1591.1095, cx=945.64465, cy=722.8234)


@dataclass(frozen=True)
class ImageEvaluation:
    """The metrics of one image and the median-scaling factor that was applied."""

    metrics: dict[str, float]
    scale: float


def replace_zeros(depth: np.ndarray) -> np.ndarray:
    """A copy with exact zeros set to :data:`ZERO_REPLACEMENT` (logs and ratios stay finite)."""
    depth = np.array(depth, copy=True)
    depth[depth == 0] = ZERO_REPLACEMENT
    return depth


def median_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """``median(gt) / median(pred)`` over all pixels, masks ignored (as the challenge does)."""
    return np.median(gt) / np.median(pred)


def depth_errors(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray | None) -> dict[str, float]:
    """abs_rel, sq_rel, rmse, rmse_log and δ < 1.25, 1.25², 1.25³ (a1..a3) over ``valid``."""
    if valid is not None:
        gt, pred = gt[valid], pred[valid]
    ratio = np.maximum(gt / pred, pred / gt)
    difference = gt - pred
    with np.errstate(invalid="ignore", divide="ignore"):  # negative predictions: NaN, as there
        log_difference = np.log(gt) - np.log(pred)
    return {
        "abs_rel": float(np.mean(np.abs(difference) / gt)),
        "sq_rel": float(np.mean(difference**2 / gt)),
        "rmse": float(np.sqrt(np.mean(difference**2))),
        "rmse_log": float(np.sqrt(np.mean(log_difference**2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
    }


def pointcloud_mask(conf: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose points enter the F-score: ``conf == 2``, or ``conf == 1`` if no pixel has
    confidence 2; every pixel without a confidence map."""
    if conf is None:
        return np.ones(shape, dtype=bool)
    high = conf == 2
    return high if high.any() else conf == 1


def pixel_coordinates(height: int, width: int, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the k-th value of a row-major flattened H×W map, as float32 arrays of H·W."""
    index = np.arange(height * width)
    if geometry == "lpcvc":
        x, y = index // height, index % height
    elif geometry == "corrected":
        x, y = index % width, index // width
    else:
        raise ValueError(f"unknown geometry {geometry!r} (expected one of {GEOMETRIES})")
    return x.astype(np.float32), y.astype(np.float32)


def backproject(depth: np.ndarray, intrinsics: Intrinsics, geometry: Geometry) -> np.ndarray:
    """H×W z-depth → (H·W, 3) float32 camera-space points, in row-major pixel order."""
    height, width = depth.shape
    x, y = pixel_coordinates(height, width, geometry)
    z = depth.reshape(-1).astype(np.float32)
    # K⁻¹ · (x, y, 1) in float32, like the script's inverse of its float32 matrix.
    inv_fx, inv_fy = np.float32(1.0 / intrinsics.fx), np.float32(1.0 / intrinsics.fy)
    offset_x = np.float32(-intrinsics.cx / intrinsics.fx)
    offset_y = np.float32(-intrinsics.cy / intrinsics.fy)
    return np.stack([(x * inv_fx + offset_x) * z, (y * inv_fy + offset_y) * z, z], axis=1)


def nearest_distances(
    points: np.ndarray, others: np.ndarray, up_to: float, known: np.ndarray
) -> np.ndarray:
    """For each of ``points``, the Euclidean distance to the nearest of ``others`` where it is
    below ``up_to`` (``inf`` beyond). ``known`` holds a distance already reached for each point
    (its own pixel's counterpart): points with ``known < FSCORE_THRESHOLD`` are correct at every
    threshold and are not searched; their entry stays ``known``, an upper bound."""
    from scipy.spatial import cKDTree

    distances = np.where(known < up_to, known, np.inf)
    # A non-finite point (NaN or inf depth) is near nothing and nothing is near it.
    search = ~(known < FSCORE_THRESHOLD) & np.isfinite(points).all(axis=1)
    others = others[np.isfinite(others).all(axis=1)]
    if not search.any() or len(others) == 0:
        return distances
    # Unbalanced, non-compact trees with larger leaves build and query fastest on depth maps;
    # the bound stops the search early for points far from every other (5× faster).
    tree = cKDTree(others, leafsize=32, balanced_tree=False, compact_nodes=False)
    found, _ = tree.query(points[search], k=1, distance_upper_bound=up_to, workers=-1)
    distances[search] = np.minimum(distances[search], found)
    return distances


def fscore_iou(
    pred_distances: np.ndarray, gt_distances: np.ndarray, threshold: float
) -> tuple[float, float]:
    """F-score and IoU (fractions) of precision P (predicted points within ``threshold`` of the
    ground truth) and recall R (ground-truth points within ``threshold`` of the prediction).

    When both P and R are below 1e-3 the challenge returns P for both (not exactly 0)."""
    precision = float(np.mean(pred_distances < threshold)) if len(pred_distances) else 0.0
    recall = float(np.mean(gt_distances < threshold)) if len(gt_distances) else 0.0
    if precision < 1e-3 and recall < 1e-3:
        return precision, precision
    product = precision * recall
    return 2 * product / (precision + recall), product / (precision + recall - product)


def pointcloud_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    intrinsics: Intrinsics = LPCVC_INTRINSICS,
    geometry: Geometry = "lpcvc",
) -> dict[str, float]:
    """F-score and IoU (percent) at 0.10 m and 0.20 m between the back-projected prediction and
    ground truth, over the pixels in ``mask``. (The script's Chamfer distance, which needs every
    nearest distance however far and is not part of the score, is not computed.)"""
    keep = mask.reshape(-1)
    pred_points = backproject(pred, intrinsics, geometry)[keep]
    gt_points = backproject(gt, intrinsics, geometry)[keep]
    # Each point's nearest neighbour is at most as far as the other cloud's point of the same
    # pixel: most points of a decent prediction need no search.
    same_pixel = np.linalg.norm(pred_points - gt_points, axis=1)
    pred_distances = nearest_distances(pred_points, gt_points, FSCORE_THRESHOLD_WIDE, same_pixel)
    gt_distances = nearest_distances(gt_points, pred_points, FSCORE_THRESHOLD_WIDE, same_pixel)
    fscore, iou = fscore_iou(pred_distances, gt_distances, FSCORE_THRESHOLD)
    fscore_20, iou_20 = fscore_iou(pred_distances, gt_distances, FSCORE_THRESHOLD_WIDE)
    return {
        "fscore": 100 * fscore,
        "iou": 100 * iou,
        "fscore_20": 100 * fscore_20,
        "iou_20": 100 * iou_20,
    }


def evaluate_image(
    pred: np.ndarray,
    gt: np.ndarray,
    conf: np.ndarray | None = None,
    intrinsics: Intrinsics = LPCVC_INTRINSICS,
    geometry: Geometry = "lpcvc",
) -> ImageEvaluation:
    """The challenge's whole per-image procedure on an H×W prediction (any positive scale, larger
    is farther) and H×W ground truth in metres, with an optional H×W confidence map (0, 1, 2).

    ``ValueError`` if the shapes differ or no pixel has confidence ≥ 1."""
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must be equal H×W")
    if conf is not None and conf.shape != gt.shape:
        raise ValueError(f"confidence {conf.shape} and ground truth {gt.shape} differ in shape")
    valid = None if conf is None else conf >= 1
    if valid is not None and not valid.any():
        raise ValueError("no pixel has confidence >= 1")
    gt = replace_zeros(gt)
    pred = replace_zeros(pred)
    scale = median_scale(pred, gt)
    pred = scale * pred
    metrics = depth_errors(gt, pred, valid)
    metrics.update(
        pointcloud_metrics(pred, gt, pointcloud_mask(conf, gt.shape), intrinsics, geometry)
    )
    return ImageEvaluation(metrics, float(scale))


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean over images of each metric (what the leaderboard reports)."""
    return {name: float(np.mean([row[name] for row in rows])) for name in METRIC_NAMES}
