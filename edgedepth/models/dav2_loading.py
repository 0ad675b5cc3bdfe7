"""The DepthAnythingV2 a config asks for, as a torch model: random weights, a given checkpoint,
or the official file (fetched into the cache), or ``random_weights: if-offline``: the official
file when it can be had, random weights otherwise. Shared by the DAv2 backends, the deploy tool
and the benchmarks; needs torch (imported when called)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from edgedepth.models.dav2 import DepthAnythingV2

log = logging.getLogger("edgedepth")

ModelKind = Literal["relative", "metric"]

#: What the viewer is told (a caption on the video and the window) when the depth comes from
#: random weights: it looks like depth and is not. ASCII: the caption font has no dashes.
RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: this depth means nothing (offline?) - see README"


class WeightsChoice(Protocol):
    """What a config says about the weights (the DAv2 backends' options have these fields)."""

    checkpoint: Path | None
    #: True, False, or "if-offline" (the official file when it can be had, else random).
    random_weights: bool | str
    encoder: str | None
    dataset: str
    max_depth: float | None
    seed: int


class LoadedDAv2(NamedTuple):
    """What :func:`load_dav2` loaded."""

    model: DepthAnythingV2
    #: The checkpoint's sha256, or ``random-seed<N>``.
    weights_id: str
    #: The checkpoint file (the official one when it was fetched); None for random weights.
    checkpoint: Path | None


def load_dav2(
    choice: WeightsChoice, kind: ModelKind, cache_dir: Path, announce: bool = True
) -> LoadedDAv2:
    """The torch model, an id of its weights and the file they came from. ``announce``: say
    what was loaded, and warn about it (off when reloading the same model)."""
    from edgedepth.models import dav2_checkpoint as ckpt
    from edgedepth.models.dav2 import ENCODERS, config_for

    info_level = logging.INFO if announce else logging.DEBUG
    warning_level = logging.WARNING if announce else logging.DEBUG
    path: Path | None = None
    if choice.checkpoint is not None:
        path = Path(choice.checkpoint)
    elif choice.random_weights == "if-offline":
        try:
            path = ckpt.fetch_official(kind, choice.encoder or "vits", choice.dataset, cache_dir)
        except ckpt.CheckpointDownloadError as offline:
            # The one warning of this case: why, and how to get real depth.
            log.log(
                warning_level,
                "backend: RANDOM WEIGHTS (random_weights: if-offline): %s; until then the depth "
                "means nothing",
                offline,
            )
    elif not choice.random_weights:
        path = ckpt.fetch_official(kind, choice.encoder or "vits", choice.dataset, cache_dir)
    else:
        log.log(
            warning_level, "backend: random weights (random_weights: true): the depth means nothing"
        )
    if path is None:
        config = config_for(choice.encoder or "vits", kind, choice.max_depth or 20.0)
        return LoadedDAv2(ckpt.random_model(config, choice.seed), f"random-seed{choice.seed}", None)
    state, info = ckpt.read_checkpoint(path)
    if info.kind is not None and info.kind != kind:
        raise ckpt.CheckpointError(
            f"{path} is a {info.kind} checkpoint; use backend type dav2-{info.kind}"
        )
    if info.kind is None:
        # Relative and metric heads have the same weights: only the name or config.json tells.
        log.log(
            warning_level,
            "backend: %s does not say whether it is a relative or a metric model (not an "
            "official file name, no config.json): using dav2-%s as the backend type says; if it "
            "is the other kind, change backend.type%s",
            path,
            kind,
            " (and check backend.max_depth / dataset)" if kind == "metric" else "",
        )
    config = ckpt.infer_config(state, info)
    official = ENCODERS.get(config.encoder)
    if official is not None and (config.tapped_blocks, config.num_heads) != (
        official.tapped_blocks,
        official.num_heads,
    ):
        log.log(
            info_level,
            "backend: %s/config.json gives blocks %s and %d heads (official %s: blocks %s, %d "
            "heads): following config.json",
            path,
            list(config.tapped_blocks),
            config.num_heads,
            config.encoder,
            list(official.tapped_blocks),
            official.num_heads,
        )
    if choice.encoder is not None and config.encoder != choice.encoder:
        config = config_for(choice.encoder)  # load_model lists the mismatched keys
    max_depth = choice.max_depth or info.max_depth or ckpt.default_max_depth(choice.dataset)
    config = replace(config, kind=kind, max_depth=max_depth)
    model = ckpt.load_model(state, config, path)
    log.log(
        info_level,
        "backend: DepthAnythingV2 %s %s from %s%s",
        config.encoder,
        kind,
        path,
        f" (max_depth {max_depth:g} m)" if kind == "metric" else "",
    )
    return LoadedDAv2(model, ckpt.file_sha256(path), path)
