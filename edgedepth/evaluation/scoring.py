"""Scoring depth predictions against ground truth, one image at a time, as LPCVC 2025 Track 3
does (the per-image numbers are :mod:`edgedepth.evaluation.metrics`): relative disparity made
into depth, ground truth fitted to the prediction, the running table of metrics, per-image
figures and the report files (``metrics.csv``, ``metrics.json``, ``figures/``)."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.evaluation.metrics import (
    METRIC_NAMES,
    Geometry,
    Intrinsics,
    evaluate_image,
    mean_metrics,
    replace_zeros,
)
from edgedepth.media.colorize import colorize, colormap, colour_bar, label_font
from edgedepth.media.imageops import min_max, resize_rgb

log = logging.getLogger("edgedepth")

DisparityConversion = Literal["invert", "reciprocal"]
#: Images drawn as figures when ``--out`` is given and ``--figures`` is not.
DEFAULT_FIGURES = 4
#: Relative error mapped to the bright end of the error panel.
ERROR_RANGE = 0.5
MASKED_GREY = np.array([60, 60, 60], dtype=np.uint8)


# --- what is scored -------------------------------------------------------------------------


@dataclass
class Sample:
    """One prediction with its ground truth, at their own sizes, and names for messages."""

    name: str
    pred: np.ndarray  # H×W
    kind: DepthKind | None
    gt_meters: np.ndarray  # h×w
    conf: np.ndarray | None  # h×w, values 0/1/2
    pred_label: str
    gt_label: str
    rgb: np.ndarray | None = None
    camera: Intrinsics | None = None


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring run ends with: the means, as a table, and how they were obtained."""

    images: int
    mean: dict[str, float]
    summary: str

    def table(self) -> str:
        return format_table(self.images, self.mean)


@dataclass
class ScoreSettings:
    geometry: Geometry
    #: None: each frame's own camera (``--intrinsics source``).
    intrinsics: Intrinsics | None
    disparity: DisparityConversion
    out_dir: Path | None
    #: How many images get a figure (the first ones); None: all.
    figure_limit: int | None
    masks: str


def disparity_to_depth(disparity: np.ndarray, method: DisparityConversion) -> np.ndarray:
    """Make a relative disparity (larger is nearer) into something that grows with depth.

    ``invert``: ``1 - minmax(d)``, LPCVC's relative convention (near 0 → far 1), what the
    leaderboard scored; not proportional to depth, which median scaling cannot correct.
    ``reciprocal``: ``1 / d`` (floored at 1e-3 of the maximum), proportional to depth when the
    disparity has no shift."""
    disparity = np.asarray(disparity, dtype=np.float32)
    if method == "invert":
        return (1.0 - min_max(disparity)).astype(np.float32)
    floor = max(float(np.max(disparity)) * 1e-3, 1e-12)
    return (1.0 / np.maximum(disparity, floor)).astype(np.float32)


def fit_to_prediction(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """Ground truth and confidence resized to the prediction's size with Pillow's nearest
    neighbour, as the challenge does (192×256 → 480×640); the aspect ratios must agree."""
    from PIL import Image

    if sample.pred.ndim != 2 or sample.pred.size == 0:
        raise EdgedepthError(f"{sample.pred_label}: prediction of shape {sample.pred.shape}")
    height, width = sample.pred.shape
    gt_height, gt_width = sample.gt_meters.shape
    if (height, width) == (gt_height, gt_width):
        return sample.gt_meters, sample.conf
    if abs(width / height - gt_width / gt_height) > 0.01 * (gt_width / gt_height):
        raise EdgedepthError(
            f"{sample.pred_label}: prediction is {width}×{height} but {sample.gt_label} is "
            f"{gt_width}×{gt_height}: aspect ratios differ (resizing would distort the ground "
            "truth; restore the prediction to the image's size)"
        )
    gt = np.asarray(
        Image.fromarray(sample.gt_meters.astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.NEAREST
        )
    )
    conf = None
    if sample.conf is not None:
        conf = np.asarray(
            Image.fromarray(sample.conf.astype(np.uint8)).resize(
                (width, height), Image.Resampling.NEAREST
            )
        )
    return gt, conf


class Scorer:
    """Scores samples one at a time (nothing is kept but the metrics), draws figures for the
    first ones, and reports the mean."""

    def __init__(self, settings: ScoreSettings) -> None:
        self.settings = settings
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.disparity_seen = False
        self.figure_dir = settings.out_dir / "figures" if settings.out_dir else None
        if self.figure_dir is not None and settings.figure_limit != 0:
            self.figure_dir.mkdir(parents=True, exist_ok=True)

    def wants_figure(self, position: int) -> bool:
        """Whether the image scored at ``position`` (from 0) gets a figure."""
        limit = self.settings.figure_limit
        return self.figure_dir is not None and (limit is None or position < limit)

    def score(self, sample: Sample) -> None:
        from PIL import Image

        pred = sample.pred
        if sample.kind == DepthKind.RELATIVE_DISPARITY:
            self.disparity_seen = True
            pred = disparity_to_depth(pred, self.settings.disparity)
        non_finite = int(np.size(pred) - np.count_nonzero(np.isfinite(pred)))
        if non_finite:
            log.warning(
                "warning: %s: %d NaN/inf values; the challenge's median scaling then makes "
                "every metric of the image NaN or 0",
                sample.pred_label,
                non_finite,
            )
        gt, conf = fit_to_prediction(sample)
        intrinsics = self.settings.intrinsics or sample.camera
        if intrinsics is None:
            raise EdgedepthError(
                f"--intrinsics source: {sample.pred_label} has no camera intrinsics "
                "(only the synthetic source provides them)"
            )
        start = time.perf_counter()
        try:
            evaluation = evaluate_image(pred, gt, conf, intrinsics, self.settings.geometry)
        except ValueError as exc:
            raise EdgedepthError(f"{sample.gt_label}: {exc}") from None
        self.seconds += time.perf_counter() - start
        if self.wants_figure(len(self.rows)):
            assert self.figure_dir is not None
            figure = compose_figure(
                sample.name,
                sample.rgb,
                replace_zeros(pred) * evaluation.scale,
                replace_zeros(gt),
                None if conf is None else conf >= 1,
                evaluation.metrics,
            )
            Image.fromarray(figure).save(self.figure_dir / f"{sample.name}.png")
        self.rows.append({"image": sample.name, "scale": evaluation.scale, **evaluation.metrics})

    def report(self) -> ScoreReport:
        """The means over every scored image, with a line saying how they were scored; writes
        ``metrics.csv`` and ``metrics.json`` under the output folder, if any."""
        if not self.rows:
            raise EdgedepthError("no image was scored")
        mean = mean_metrics(self.rows)
        settings = self.settings
        camera = str(settings.intrinsics) if settings.intrinsics else "from the source"
        notes = [
            f"geometry {settings.geometry}",
            f"intrinsics {camera}",
            f"masks: {settings.masks}",
            f"metrics {1000 * self.seconds / len(self.rows):.0f} ms per image",
        ]
        if self.disparity_seen:
            notes.append(f"relative disparity converted by {settings.disparity}")
        if settings.out_dir is not None:
            self.write(settings.out_dir, mean)
        return ScoreReport(
            len(self.rows), mean, f"scored {len(self.rows)} images ({', '.join(notes)})"
        )

    def write(self, out_dir: Path, mean: dict[str, float]) -> None:
        columns = ["image", "scale", *METRIC_NAMES]
        with open(out_dir / "metrics.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            writer.writerows(self.rows)
            writer.writerow({"image": "mean", "scale": "", **mean})
        settings = {
            "geometry": self.settings.geometry,
            "intrinsics": str(self.settings.intrinsics) if self.settings.intrinsics else "source",
            "masks": self.settings.masks,
            "disparity_to_depth": self.settings.disparity,
        }
        report = {"settings": settings, "images": self.rows, "mean": mean}
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")


def format_table(count: int, mean: dict[str, float]) -> str:
    """Two aligned lines: metric names, then their means over ``count`` images."""
    names = ["images", *METRIC_NAMES]
    values = [str(count), *(f"{mean[name]:.4f}" for name in METRIC_NAMES)]
    widths = [max(len(name), len(value)) for name, value in zip(names, values, strict=True)]
    header = "  ".join(name.rjust(width) for name, width in zip(names, widths, strict=True))
    row = "  ".join(value.rjust(width) for value, width in zip(values, widths, strict=True))
    return f"{header}\n{row}"


# --- figures --------------------------------------------------------------------------------


def compose_figure(
    name: str,
    rgb: np.ndarray | None,
    pred_meters: np.ndarray,
    gt_meters: np.ndarray,
    valid: np.ndarray | None,
    metrics: dict[str, float],
) -> np.ndarray:
    """RGB | prediction (median-scaled) | ground truth | colour bar (m) | relative error, with a
    caption; pixels outside the confidence mask are grey."""
    from PIL import Image, ImageDraw

    height, width = gt_meters.shape
    valid = np.ones_like(gt_meters, dtype=bool) if valid is None else valid
    low, high = (float(v) for v in np.percentile(gt_meters[valid], (2.0, 98.0)))
    kind = DepthKind.METRIC_METERS
    pred_panel = colorize(pred_meters, kind, low, high, "turbo")
    gt_panel = colorize(gt_meters, kind, low, high, "turbo")
    relative_error = np.abs(pred_meters - gt_meters) / gt_meters
    error_index = np.clip(relative_error / ERROR_RANGE, 0.0, 1.0) * 255.0 + 0.5
    error_panel = colormap("inferno")[error_index.astype(np.uint8)]
    gt_panel[~valid] = MASKED_GREY
    error_panel[~valid] = MASKED_GREY
    rgb_panel = (
        resize_rgb(rgb, (height, width), "bilinear")
        if rgb is not None
        else np.full((height, width, 3), 24, dtype=np.uint8)
    )
    panels = [
        (rgb_panel, "RGB" if rgb is not None else "no RGB"),
        (pred_panel, "prediction (median-scaled)"),
        (gt_panel, "ground truth"),
        (colour_bar(height, kind, low, high, "turbo"), ""),
        (error_panel, f"|pred - gt| / gt, 0 to {ERROR_RANGE:g}"),
    ]
    canvas = Image.fromarray(np.concatenate([panel for panel, _ in panels], axis=1))
    draw = ImageDraw.Draw(canvas)
    font = label_font(13)
    x = 0
    for panel, label in panels:
        if label:
            draw.rectangle((x, height - 20, x + 8 + 7 * len(label), height), fill=(0, 0, 0))
            draw.text((x + 4, height - 17), label, fill=(255, 255, 255), font=font)
        x += panel.shape[1]
    caption = (
        f"{name}   abs_rel {metrics['abs_rel']:.3f}   rmse {metrics['rmse']:.3f} m   "
        f"d1 {metrics['a1']:.3f}   F-score {metrics['fscore']:.2f}   IoU {metrics['iou']:.2f}"
    )
    draw.rectangle((0, 0, 8 + 7 * len(caption), 20), fill=(0, 0, 0))
    draw.text((4, 3), caption, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)
