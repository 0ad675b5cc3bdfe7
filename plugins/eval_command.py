"""``edgedepth eval``: score depth predictions exactly as LPCVC 2025 Track 3 does.

Three ways in, one scorer: ``.npy`` predictions against 16-bit PNG ground truth (``--pred``/
``--gt``); a pipeline config run on a folder of images with ground truth (``--data``); or a
pipeline config run on the synthetic scene, scored against its exact depth (``--synthetic``).
The metrics themselves are in :mod:`edgedepth.metrics`.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

import edgedepth
from edgedepth.cli import debug_option, load_with_plugins, set_option, user_errors
from edgedepth.colorize import colorize, colormap, colour_bar, label_font
from edgedepth.config import LoadedConfig, PluginSection, StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind, Frame
from edgedepth.imageops import resize_rgb
from edgedepth.metrics import (
    GEOMETRIES,
    LPCVC_INTRINSICS,
    METRIC_NAMES,
    Geometry,
    Intrinsics,
    evaluate_image,
    mean_metrics,
    replace_zeros,
)
from edgedepth.plugins.images_source import IMAGE_SUFFIXES, natural_key, read_rgb
from edgedepth.plugins.postprocessors import min_max
from edgedepth.registry import Registration, Registry

DisparityConversion = Literal["invert", "reciprocal"]
#: Ground-truth folder names accepted under ``--data DIR`` (``raw`` is the challenge's).
GROUND_TRUTH_FOLDERS = ("depth", "raw")
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
        pred = sample.pred
        if sample.kind == DepthKind.RELATIVE_DISPARITY:
            self.disparity_seen = True
            pred = disparity_to_depth(pred, self.settings.disparity)
        non_finite = int(np.size(pred) - np.count_nonzero(np.isfinite(pred)))
        if non_finite:
            click.echo(
                f"edgedepth: warning: {sample.pred_label}: {non_finite} NaN/inf values; the "
                "challenge's median scaling then makes every metric of the image NaN or 0",
                err=True,
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

    def report(self) -> None:
        """Table of means on stdout, a summary line on stderr, CSV and JSON under ``--out``."""
        if not self.rows:
            raise EdgedepthError("no image was scored")
        mean = mean_metrics(self.rows)
        click.echo(format_table(len(self.rows), mean))
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
        click.echo(f"edgedepth: scored {len(self.rows)} images ({', '.join(notes)})", err=True)
        if settings.out_dir is not None:
            self.write(settings.out_dir, mean)

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


# --- files ----------------------------------------------------------------------------------


def files_by_stem(folder: Path, suffixes: set[str], what: str, option: str) -> dict[str, Path]:
    """``stem → path`` of the files in ``folder`` with one of ``suffixes``, in natural order."""
    if not folder.is_dir():
        raise EdgedepthError(f"{option} {folder}: no such folder")
    paths = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes),
        key=natural_key,
    )
    if not paths:
        raise EdgedepthError(f"{option} {folder}: no {what} found")
    by_stem: dict[str, Path] = {}
    for path in paths:
        if path.stem in by_stem:
            raise EdgedepthError(f"{path} and {by_stem[path.stem]}: two {what} named {path.stem!r}")
        by_stem[path.stem] = path
    return by_stem


def check_pairs(
    preds: dict[str, Path], gts: dict[str, Path], pred_what: str, pred_dir: Path, gt_dir: Path
) -> None:
    """Every prediction must have a ground truth of the same stem and the other way round."""

    def listing(stems: set[str], files: dict[str, Path]) -> str:
        names = [files[stem].name for stem in sorted(stems, key=lambda s: natural_key(Path(s)))]
        more = f" (and {len(names) - 3} more)" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more

    missing_gt = set(preds) - set(gts)
    missing_pred = set(gts) - set(preds)
    if not (missing_gt or missing_pred):
        return
    counts = f"{len(preds)} {pred_what} in {pred_dir}, {len(gts)} ground-truth PNGs in {gt_dir}"
    if missing_gt:
        problem = f"no ground truth for {listing(missing_gt, preds)}"
    else:
        problem = f"no {pred_what[:-1]} for {listing(missing_pred, gts)}"
    raise EdgedepthError(f"{counts}: {problem} (files are matched by name)")


def read_prediction(path: Path) -> np.ndarray:
    """An LPCVC prediction: ``(1, 1, H, W)`` or ``(H, W)`` → H×W."""
    try:
        pred = np.load(path)
    except (OSError, ValueError) as exc:
        raise EdgedepthError(f"{path}: cannot read .npy: {exc}") from None
    if pred.ndim == 4 and pred.shape[:2] == (1, 1):
        pred = pred[0, 0]
    if pred.ndim != 2 or not np.issubdtype(pred.dtype, np.number):
        raise EdgedepthError(
            f"{path}: prediction of shape {pred.shape} ({pred.dtype}), expected (1, 1, H, W) "
            "or (H, W) numbers"
        )
    return pred


def read_png_array(path: Path, what: str) -> np.ndarray:
    """A single-channel PNG as an integer array."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except FileNotFoundError:
        raise EdgedepthError(f"{path}: {what} not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot read {what}: {exc}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise EdgedepthError(
            f"{path}: {what} must be a single-channel integer PNG, got shape {array.shape} "
            f"({array.dtype})"
        )
    return array


def read_ground_truth(path: Path, conf_dir: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth in metres (16-bit PNG in millimetres) and its confidence map, if masks are used."""
    gt_meters = read_png_array(path, "ground-truth depth").astype(np.float32) / 1000.0
    if conf_dir is None:
        return gt_meters, None
    conf_path = conf_dir / path.name
    conf = read_png_array(conf_path, "confidence mask")
    if conf.shape != gt_meters.shape:
        raise EdgedepthError(
            f"{conf_path}: confidence mask is {conf.shape[1]}×{conf.shape[0]} but {path} is "
            f"{gt_meters.shape[1]}×{gt_meters.shape[0]}"
        )
    return gt_meters, conf


def confidence_folder(gt_dir: Path, explicit: Path | None) -> Path | None:
    """The challenge reads ``…/raw/x.png``'s mask from ``…/conf/x.png``: a ``conf`` folder next
    to the ground-truth folder is used when it exists (or the one given)."""
    if explicit is not None:
        if not explicit.is_dir():
            raise EdgedepthError(f"--conf {explicit}: no such folder")
        return explicit
    sibling = gt_dir.parent / "conf"
    return sibling if sibling.is_dir() and sibling.resolve() != gt_dir.resolve() else None


def score_files(
    pred_dir: Path,
    gt_dir: Path,
    conf_dir: Path | None,
    rgb_dir: Path | None,
    pred_kind: DepthKind | None,
    scorer: Scorer,
) -> None:
    """``--pred``/``--gt``: every ``.npy`` against the PNG of the same name."""
    preds = files_by_stem(pred_dir, {".npy"}, ".npy predictions", "--pred")
    gts = files_by_stem(gt_dir, {".png"}, "ground-truth PNGs", "--gt")
    check_pairs(preds, gts, ".npy predictions", pred_dir, gt_dir)
    rgbs = files_by_stem(rgb_dir, IMAGE_SUFFIXES, "images", "--rgb") if rgb_dir else {}
    for index, (stem, pred_path) in enumerate(preds.items()):
        gt_meters, conf = read_ground_truth(gts[stem], conf_dir)
        rgb = read_rgb(rgbs[stem]) if scorer.wants_figure(index) and stem in rgbs else None
        scorer.score(
            Sample(
                stem,
                read_prediction(pred_path),
                pred_kind,
                gt_meters,
                conf,
                str(pred_path),
                str(gts[stem]),
                rgb,
            )
        )


# --- pipelines ------------------------------------------------------------------------------


class ScoringSink:
    """A sink that scores each finished frame against its ground truth as it arrives."""

    def __init__(
        self,
        scorer: Scorer,
        ground_truth: Callable[[Frame], tuple[str, np.ndarray, np.ndarray | None, str]],
    ) -> None:
        self.scorer = scorer
        self.ground_truth = ground_truth

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None
        name, gt_meters, conf, gt_label = self.ground_truth(frame)
        intrinsics = frame.extras.get("intrinsics")
        self.scorer.score(
            Sample(
                name,
                frame.depth,
                frame.depth_kind,
                gt_meters,
                conf,
                f"frame {frame.index} ({name})",
                gt_label,
                frame.image,
                None if intrinsics is None else Intrinsics.from_matrix(np.asarray(intrinsics)),
            )
        )


class ScoringSinkOptions(StrictModel):
    pass


def run_and_score(
    loaded: LoadedConfig,
    registry: Registry,
    source: PluginSection,
    sinks: list[PluginSection],
    scoring_sink: ScoringSink,
) -> None:
    """Run the config with ``source`` and ``sinks`` in place of its own, in file mode, every
    frame passing through ``scoring_sink`` as well."""
    from edgedepth.pipeline import Pipeline, Stage

    runtime = loaded.config.runtime.model_copy(update={"mode": "file", "max_frames": None})
    config = loaded.config.model_copy(update={"source": source, "sinks": sinks, "runtime": runtime})
    pipeline = Pipeline.from_config(LoadedConfig(loaded.path, config), registry)
    registration = Registration(
        "sinks", "eval", ScoringSinkOptions, ScoringSink, __name__, "scores frames vs ground truth"
    )
    pipeline.sinks.append(Stage(registration, scoring_sink))
    result = pipeline.run()
    if result.error is not None:
        raise result.error
    if result.stopped_by in ("SIGINT", "SIGTERM"):
        click.echo(f"edgedepth: stopped by {result.stopped_by}; scoring what ran", err=True)


def data_layout(data_dir: Path) -> tuple[Path, Path, Path | None]:
    """``DIR/rgb``, ``DIR/depth`` (or ``DIR/raw``) and the optional ``DIR/conf``."""
    if not data_dir.is_dir():
        raise EdgedepthError(f"--data {data_dir}: no such folder")
    rgb_dir = data_dir / "rgb"
    gt_dir = next((data_dir / n for n in GROUND_TRUTH_FOLDERS if (data_dir / n).is_dir()), None)
    if not rgb_dir.is_dir() or gt_dir is None:
        raise EdgedepthError(
            f"--data {data_dir}: expected folders rgb/ and depth/ (or raw/), and optionally conf/"
        )
    conf_dir = data_dir / "conf"
    return rgb_dir, gt_dir, conf_dir if conf_dir.is_dir() else None


def score_data_folder(
    loaded: LoadedConfig, registry: Registry, data_dir: Path, scorer: Scorer
) -> None:
    """``--data DIR``: the config run on ``DIR/rgb``, each frame scored against the depth PNG
    of the same name; with ``--out``, the predictions are also kept as LPCVC ``.npy`` files."""
    rgb_dir, gt_dir, conf_dir = data_layout(data_dir)
    rgbs = files_by_stem(rgb_dir, IMAGE_SUFFIXES, "images", "--data")
    gts = files_by_stem(gt_dir, {".png"}, "ground-truth PNGs", "--data")
    check_pairs(rgbs, gts, "images", rgb_dir, gt_dir)

    def ground_truth(frame: Frame) -> tuple[str, np.ndarray, np.ndarray | None, str]:
        stem = Path(frame.extras["path"]).stem
        return (stem, *read_ground_truth(gts[stem], conf_dir), str(gts[stem]))

    source = PluginSection(type="images", path=str(rgb_dir.resolve()))
    out_dir = scorer.settings.out_dir
    if out_dir is None:
        run_and_score(loaded, registry, source, [], ScoringSink(scorer, ground_truth))
        return
    # The npy sink names files by frame index; they are renamed to the images' names after the
    # run, from a folder of their own so that no name can collide.
    by_index = Path(tempfile.mkdtemp(prefix=".by-index-", dir=out_dir))
    try:
        sink = PluginSection(type="npy", dir=str(by_index.resolve()), layout="nchw")
        run_and_score(loaded, registry, source, [sink], ScoringSink(scorer, ground_truth))
        prediction_dir = out_dir / "predictions"
        prediction_dir.mkdir(exist_ok=True)
        for index, stem in enumerate(rgbs):  # the images source's order
            written = by_index / f"{index:06d}.npy"
            if written.exists():
                written.replace(prediction_dir / f"{stem}.npy")
    finally:
        shutil.rmtree(by_index, ignore_errors=True)


def score_synthetic(loaded: LoadedConfig, registry: Registry, frames: int, scorer: Scorer) -> None:
    """``--synthetic N``: the config run on N synthetic frames (keeping the config's synthetic
    options if its source is one), scored against each frame's exact depth."""
    options = loaded.config.source.options if loaded.config.source.type == "synthetic" else {}
    source = PluginSection(type="synthetic", **{**options, "frames": frames, "live": False})

    def ground_truth(frame: Frame) -> tuple[str, np.ndarray, np.ndarray | None, str]:
        if frame.ground_truth is None:
            raise EdgedepthError(f"frame {frame.index} carries no ground truth")
        name = f"{frame.index:06d}"
        return name, frame.ground_truth, None, f"synthetic frame {frame.index}"

    run_and_score(loaded, registry, source, [], ScoringSink(scorer, ground_truth))


# --- the command ----------------------------------------------------------------------------


def require_scipy() -> None:
    """The F-score's nearest neighbours need scipy (a dev extra, not a runtime dependency)."""
    try:
        import scipy.spatial  # noqa: F401
    except ImportError:
        raise EdgedepthError("eval: needs scipy for the F-score: pip install scipy") from None


def parse_figures(text: str | None, out_dir: Path | None) -> int | None:
    if text is None:
        return DEFAULT_FIGURES
    if out_dir is None:
        raise EdgedepthError("--figures: figures are written under --out DIR; give --out")
    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise EdgedepthError(f"--figures: expected a number >= 0 or 'all', got {text!r}")
    return count


def parse_intrinsics(text: str, synthetic: bool) -> Intrinsics | None:
    choice = text.strip().lower()
    if choice == "lpcvc":
        return LPCVC_INTRINSICS
    if choice == "source":
        if not synthetic:
            raise EdgedepthError("--intrinsics source: only frames of --synthetic carry a camera")
        return None
    try:
        return Intrinsics.parse(text)
    except ValueError as exc:
        raise EdgedepthError(f"--intrinsics: {exc}") from None


def check_mode(
    pred: Path | None,
    gt: Path | None,
    config: Path | None,
    data: Path | None,
    synthetic: int | None,
    file_only: dict[str, bool],
) -> None:
    """Exactly one of the three ways in, with only the options that belong to it."""
    if pred or gt:
        if not (pred and gt):
            raise EdgedepthError("eval: --pred and --gt go together")
        if config or data or synthetic is not None:
            raise EdgedepthError("eval: either --pred/--gt, or --config with --data/--synthetic")
        return
    if config is None:
        raise EdgedepthError(
            "eval: give --pred DIR --gt DIR, or --config CFG with --data/--synthetic"
        )
    if (data is None) == (synthetic is None):
        raise EdgedepthError("eval: --config needs exactly one of --data DIR or --synthetic N")
    for option, given in file_only.items():
        if given:
            raise EdgedepthError(f"eval: {option} applies to --pred/--gt only")


path_option = click.Path(path_type=Path, file_okay=False)


@click.command("eval")
@click.option("--pred", type=path_option, help="Folder of .npy predictions, (1,1,H,W) or (H,W).")
@click.option("--gt", type=path_option, help="Folder of 16-bit PNG ground truth in millimetres.")
@click.option("--conf", "conf_dir", type=path_option, help="Confidence masks [GT/../conf].")
@click.option("--rgb", "rgb_dir", type=path_option, help="Images for the figures [GT/../rgb].")
@click.option(
    "--pred-kind",
    type=click.Choice(["depth", "disparity"]),
    default="depth",
    show_default=True,
    help="What the .npy files hold (LPCVC expects depth-like values, far = larger).",
)
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Pipeline config to run first (with --data or --synthetic).",
)
@set_option
@click.option("--data", type=path_option, help="DIR with rgb/, depth/ (or raw/) and conf/.")
@click.option("--synthetic", type=click.IntRange(min=1), help="Score N synthetic frames.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write metrics.csv, metrics.json and figures/ here.",
)
@click.option(
    "--geometry",
    type=click.Choice(GEOMETRIES),
    default="lpcvc",
    show_default=True,
    help="Back-projection: the challenge's pixel order (lpcvc) or the geometric one.",
)
@click.option(
    "--intrinsics",
    default="lpcvc",
    show_default=True,
    metavar="lpcvc|source|FX,FY,CX,CY",
    help="Camera for the F-score point clouds (source: the synthetic frames' own).",
)
@click.option(
    "--disparity-to-depth",
    "disparity",
    type=click.Choice(["invert", "reciprocal"]),
    default="invert",
    show_default=True,
    help="How relative disparity becomes depth before scoring.",
)
@click.option(
    "--figures",
    default=None,
    metavar="N|all",
    help=f"Figures of the first N images under --out/figures [{DEFAULT_FIGURES}].",
)
@debug_option
def eval_command(
    pred: Path | None,
    gt: Path | None,
    conf_dir: Path | None,
    rgb_dir: Path | None,
    pred_kind: str,
    config: Path | None,
    overrides: tuple[str, ...],
    data: Path | None,
    synthetic: int | None,
    out_dir: Path | None,
    geometry: Geometry,
    intrinsics: str,
    disparity: DisparityConversion,
    figures: str | None,
    debug: bool,
) -> None:
    """Score depth predictions the way LPCVC 2025 Track 3 does, and print the means.

    \b
    edgedepth eval --pred DIR --gt DIR      .npy predictions vs PNG ground truth (same names)
    edgedepth eval --config CFG --data DIR  run CFG on DIR/rgb, then score against DIR/depth
    edgedepth eval --config CFG --synthetic N   run CFG on N synthetic frames, exact depth

    \b
    Data folder (--data DIR), files matched by name:
      DIR/rgb/NAME.png|jpg    input images (the config's source is replaced by them)
      DIR/depth/NAME.png      16-bit depth in millimetres (raw/ is accepted too, as in LPCVC)
      DIR/conf/NAME.png       optional confidence 0/1/2 (without it every pixel counts)
    With --pred/--gt, masks come from a conf/ folder next to the ground-truth folder (the
    challenge's raw/ → conf/), or --conf.

    \b
    Per image, as the challenge: ground truth and masks resized to the prediction with nearest
    neighbour; zeros → 1e-5; prediction × median(gt)/median(pred) (always, even for metric
    models); abs_rel, sq_rel, rmse, rmse_log, a1-a3 over conf >= 1; F-score and IoU (percent)
    at 0.10 m and 0.20 m between back-projected point clouds over conf == 2 (or conf == 1 if
    none), with LPCVC's intrinsics and its transposed pixel order (--geometry lpcvc), or each
    depth at its own pixel (--geometry corrected). Relative disparity (larger = nearer) is
    converted first: invert = 1 - minmax(d), LPCVC's near 0 → far 1; reciprocal = 1/d, which is
    proportional to depth and so survives median scaling better. The configs' sinks are not run.
    """
    with user_errors(debug):
        check_mode(
            pred,
            gt,
            config,
            data,
            synthetic,
            {
                "--conf": conf_dir is not None,
                "--rgb": rgb_dir is not None,
                "--pred-kind": pred_kind != "depth",
            },
        )
        if overrides and config is None:
            raise EdgedepthError("eval: --set applies to --config")
        require_scipy()
        figure_limit = parse_figures(figures, out_dir)
        camera = parse_intrinsics(intrinsics, synthetic is not None)
        if pred is not None and gt is not None:
            masks = confidence_folder(gt, conf_dir)
        elif data is not None:
            masks = data_layout(data)[2]
        else:
            masks = None
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EdgedepthError(f"--out {out_dir}: cannot create: {exc.strerror}") from None
        no_masks = "none (synthetic depth is exact)" if synthetic else "none (no conf/ folder)"
        settings = ScoreSettings(
            geometry, camera, disparity, out_dir, figure_limit, str(masks) if masks else no_masks
        )
        scorer = Scorer(settings)
        if pred is not None and gt is not None:
            if rgb_dir is None and (gt.parent / "rgb").is_dir():
                rgb_dir = gt.parent / "rgb"
            kind = DepthKind.RELATIVE_DISPARITY if pred_kind == "disparity" else None
            score_files(pred, gt, masks, rgb_dir, kind, scorer)
        else:
            assert config is not None
            loaded, registry = load_with_plugins(config, overrides)
            if data is not None:
                score_data_folder(loaded, registry, data, scorer)
            else:
                assert synthetic is not None
                score_synthetic(loaded, registry, synthetic, scorer)
        scorer.report()
    sys.stdout.flush()


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(eval_command)
