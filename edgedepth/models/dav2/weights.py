"""Which DepthAnythingV2 weights a config names, and their identity, without torch: the official
files (fetched into the cache on request, from ``$HF_ENDPOINT`` when it is set: a Hugging Face
mirror, as ``huggingface_hub`` honours it), a checkpoint's sha256 (hashed once per version of the
file, then remembered), and :class:`ModelKey`, everything the torch model is a function of, so a
cached export is found without reading the checkpoint."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from edgedepth.api.errors import EdgedepthError
from edgedepth.runtime.cache import cache_folder
from edgedepth.runtime.file_identity import content_sha256
from edgedepth.system.network import unreachable

log = logging.getLogger("edgedepth")

#: How messages name the folder official checkpoints are downloaded into.
CHECKPOINT_CACHE = "the checkpoint cache"

ModelKind = Literal["relative", "metric"]

SIZE_NAMES = {"vits": "Small", "vitb": "Base", "vitl": "Large"}
#: Metric datasets → (name in the official repository, max_depth in metres).
METRIC_DATASETS = {"hypersim": ("Hypersim", 20.0), "vkitti": ("VKITTI", 80.0)}
#: max_depth of random metric weights when none is given.
RANDOM_MAX_DEPTH = 20.0
#: What the viewer is told (a caption on the video and the window) when the depth comes from
#: random weights: it looks like depth and is not. ASCII: the caption font has no dashes.
RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: this depth means nothing (offline?) - see README"


class CheckpointError(EdgedepthError):
    """A checkpoint cannot be read, is refused, or does not fit the chosen variant."""


class CheckpointDownloadError(CheckpointError):
    """An official checkpoint is not in the cache and cannot be downloaded (offline)."""


class WeightsChoice(Protocol):
    """What a config says about the weights (the DAv2 backends' options have these fields)."""

    checkpoint: Path | None
    #: True, False, or "if-offline" (the official file when it can be had, else random).
    random_weights: bool | str
    encoder: str | None
    dataset: str
    max_depth: float | None
    seed: int


# --- official files ------------------------------------------------------------------------------


def official_filename(kind: ModelKind, encoder: str, dataset: str = "hypersim") -> str:
    if kind == "relative":
        return f"depth_anything_v2_{encoder}.pth"
    return f"depth_anything_v2_metric_{dataset}_{encoder}.pth"


def hub_endpoint() -> str:
    """Where official files are downloaded from: ``$HF_ENDPOINT`` (a mirror), else Hugging Face."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def official_url(kind: ModelKind, encoder: str, dataset: str = "hypersim") -> str:
    size = SIZE_NAMES[encoder]
    repo = (
        f"Depth-Anything-V2-{size}"
        if kind == "relative"
        else f"Depth-Anything-V2-Metric-{METRIC_DATASETS[dataset][0]}-{size}"
    )
    filename = official_filename(kind, encoder, dataset)
    return f"{hub_endpoint()}/depth-anything/{repo}/resolve/main/{filename}"


def default_max_depth(dataset: str) -> float:
    return METRIC_DATASETS[dataset][1]


def official_path(kind: ModelKind, encoder: str, dataset: str, cache_dir: Path) -> Path:
    """Where the official checkpoint is kept in the cache."""
    return cache_dir / "checkpoints" / official_filename(kind, encoder, dataset)


def cannot_download(target: Path, url: str, reason: object) -> str:
    """Why an official checkpoint is missing, and what to do about it."""
    return (
        f"checkpoint {target.name} is not in {target.parent} and cannot be downloaded "
        f"({reason}): get it from {url} and put it there, or set backend.checkpoint"
    )


def fetch_official(
    kind: ModelKind, encoder: str, dataset: str, cache_dir: Path, timeout: float = 10.0
) -> Path:
    """The official checkpoint from the cache, downloaded (with a progress bar) if missing."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    from edgedepth.engine.progress import enabled

    filename = official_filename(kind, encoder, dataset)
    target = official_path(kind, encoder, dataset, cache_dir)
    if target.exists():
        return target
    url = official_url(kind, encoder, dataset)
    licence = "Apache-2.0" if encoder == "vits" else "CC-BY-NC-4.0 (non-commercial)"
    cache_folder(target.parent, CHECKPOINT_CACHE)
    # Said as `edgedepth check` says it (system.network), before anything is written.
    reason = unreachable(url, timeout=timeout)
    if reason is not None:
        raise CheckpointDownloadError(cannot_download(target, url, reason))
    partial = target.with_name(filename + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            log.info("downloading %s (%s) from %s", filename, licence, url)
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=filename, disable=not enabled())
            received = 0
            with bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise OSError(f"connection closed after {received} of {total} bytes")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise CheckpointDownloadError(cannot_download(target, url, reason)) from None
    partial.replace(target)
    return target


def resolved_checkpoint(
    choice: WeightsChoice, kind: ModelKind, cache_dir: Path, warning_level: int = logging.WARNING
) -> Path | None:
    """The checkpoint file a config names (its ``checkpoint``, else the official file, fetched
    if missing), or None for random weights: ``random_weights: true``, or ``if-offline`` when
    the official file cannot be had. Random weights are said here, once, at ``warning_level``
    (with how to get the official file when it could not be downloaded)."""
    if choice.checkpoint is not None:
        return Path(choice.checkpoint)
    if choice.random_weights is True:
        log.log(
            warning_level, "backend: random weights (random_weights: true): the depth means nothing"
        )
        return None
    encoder = choice.encoder or "vits"
    if choice.random_weights != "if-offline":
        return fetch_official(kind, encoder, choice.dataset, cache_dir)
    try:
        return fetch_official(kind, encoder, choice.dataset, cache_dir)
    except CheckpointDownloadError as offline:
        log.log(
            warning_level,
            "backend: RANDOM WEIGHTS (random_weights: if-offline): %s; until then the depth "
            "means nothing",
            offline,
        )
        return None


# --- identity ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKey:
    """Everything the torch model a config asks for is a function of (its architecture comes
    from the weights, the rest from these options): with the graph options and the input size,
    the key of a cached export."""

    #: The checkpoint's sha256, or ``random-seed<N>``.
    weights: str
    kind: ModelKind
    #: An encoder forced by the config (None: the checkpoint's own).
    encoder: str | None
    #: A max_depth forced by the config (None: the checkpoint's, else the dataset's).
    max_depth: float | None
    dataset: str | None


def model_key(
    choice: WeightsChoice, kind: ModelKind, cache_dir: Path, checkpoint: Path | None
) -> ModelKey:
    """The :class:`ModelKey` of a config whose weights are ``checkpoint`` (from
    :func:`resolved_checkpoint`; None: random weights), without torch (reads the checkpoint once
    per version of the file, to hash it)."""
    if checkpoint is None:
        max_depth = choice.max_depth or RANDOM_MAX_DEPTH
        return ModelKey(
            f"random-seed{choice.seed}", kind, choice.encoder or "vits", max_depth, None
        )
    dataset = choice.dataset if kind == "metric" else None
    return ModelKey(
        content_sha256(checkpoint, cache_dir), kind, choice.encoder, choice.max_depth, dataset
    )
