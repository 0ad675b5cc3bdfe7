"""``edgedepth eval``: score depth predictions exactly as LPCVC 2025 Track 3 does.

Three ways in, one scorer: ``.npy`` predictions against 16-bit PNG ground truth (``--pred``/
``--gt``); a pipeline config run on a folder of images with ground truth (``--data``); or a
pipeline config run on the synthetic scene, scored against its exact depth (``--synthetic``).
The metrics themselves are in :mod:`edgedepth.evaluation.metrics`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame
from edgedepth.cli import (
    claim_option_output,
    debug_option,
    existing_option,
    load_with_plugins,
    set_option,
    user_errors,
)
from edgedepth.engine.config import LoadedConfig, PluginSection
from edgedepth.engine.pipeline import Pipeline
from edgedepth.engine.progress import steps
from edgedepth.engine.registry import Registry
from edgedepth.evaluation.lpcvc_io import (
    check_pairs,
    confidence_folder,
    data_layout,
    files_by_stem,
    read_ground_truth,
    read_prediction,
)
from edgedepth.evaluation.metrics import GEOMETRIES, LPCVC_INTRINSICS, Geometry, Intrinsics
from edgedepth.evaluation.scoring import (
    DEFAULT_FIGURES,
    DisparityConversion,
    Sample,
    Scorer,
    ScoreSettings,
)
from edgedepth.media.imageops import IMAGE_SUFFIXES, read_rgb


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
    for index, (stem, pred_path) in enumerate(steps(preds.items(), len(preds), "scoring", "image")):
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
                None
                if frame.intrinsics is None
                else Intrinsics.from_matrix(frame.intrinsics.matrix),
            )
        )


def run_and_score(
    loaded: LoadedConfig,
    registry: Registry,
    source: PluginSection,
    sinks: list[PluginSection],
    scoring_sink: ScoringSink,
) -> None:
    """Run the config with ``source`` and ``sinks`` in place of its own, in file mode, every
    frame passing through ``scoring_sink`` as well."""
    runtime = loaded.config.runtime.model_copy(update={"mode": "file", "max_frames": None})
    config = loaded.config.model_copy(update={"source": source, "sinks": sinks, "runtime": runtime})
    pipeline = Pipeline.from_config(
        LoadedConfig(loaded.path, config), registry, extra_sinks={"eval": scoring_sink}
    )
    result = pipeline.run()
    if result.error is not None:
        raise result.error
    if result.stopped_by in ("SIGINT", "SIGTERM"):
        click.echo(f"edgedepth: stopped by {result.stopped_by}; scoring what ran", err=True)


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
    own = loaded.config.source
    options = own.options if own is not None and own.type == "synthetic" else {}
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


#: What ``eval --out DIR`` writes into DIR (an earlier evaluation's, when there).
EVAL_OUTPUTS = ("metrics.csv", "metrics.json", "figures", "predictions")


def eval_outputs(out_dir: Path) -> list[Path]:
    """The outputs of an earlier evaluation in ``out_dir``."""
    return [out_dir / name for name in EVAL_OUTPUTS if (out_dir / name).exists()]


def claim_out_dir(out_dir: Path, existing: str) -> Path:
    """``--out`` claimed by ``--existing`` before any work: an earlier evaluation there is
    refused, replaced (its outputs deleted now) or left for ``DIR-2``; the folder is created."""
    out_dir = claim_option_output(out_dir, existing, "--out", occupied=eval_outputs)
    for earlier in eval_outputs(out_dir):  # existing: overwrite
        if earlier.is_dir():
            shutil.rmtree(earlier)
        else:
            earlier.unlink()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgedepthError(f"--out {out_dir}: cannot create: {exc.strerror}") from None
    return out_dir


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
@existing_option
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
    existing: str,
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
            out_dir = claim_out_dir(out_dir, existing)
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
        report = scorer.report()
        click.echo(report.table())
        click.echo(f"edgedepth: {report.summary}", err=True)
    sys.stdout.flush()


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(eval_command)
