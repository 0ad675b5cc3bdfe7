"""LPCVC 2025 Track 3 files: ``.npy`` predictions, 16-bit PNG ground truth in millimetres with
its confidence masks (``raw/`` → ``conf/``), and data folders (``rgb/``, ``depth/`` or ``raw/``,
``conf/``), matched by file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.media.imageops import natural_key

#: Ground-truth folder names accepted in a data folder (``raw`` is the challenge's).
GROUND_TRUTH_FOLDERS = ("depth", "raw")


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
    if pred.ndim != 2 or pred.size == 0 or not np.issubdtype(pred.dtype, np.number):
        raise EdgedepthError(
            f"{path}: prediction of shape {pred.shape} ({pred.dtype}), expected (1, 1, H, W) "
            "or (H, W) numbers, H and W at least 1"
        )
    return pred


def read_png_array(path: Path, what: str) -> np.ndarray:
    """A single-channel PNG as an integer array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except FileNotFoundError:
        raise EdgedepthError(f"{path}: {what} not found") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
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
