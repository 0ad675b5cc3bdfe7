"""The DepthAnythingV2 a config asks for, as a torch model: random weights, a given checkpoint,
or the official file (fetched into the cache). Shared by the DAv2 backends, the deploy tool and
the benchmarks; needs torch (imported when called). Which weights, and their identity, without
torch: :mod:`edgedepth.models.dav2_weights`."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgedepth.models.dav2_weights import (
    RANDOM_MAX_DEPTH,
    CheckpointError,
    ModelKey,
    ModelKind,
    WeightsChoice,
    checkpoint_path,
    default_max_depth,
    model_key,
)

if TYPE_CHECKING:
    from edgedepth.models.dav2 import DepthAnythingV2

log = logging.getLogger("edgedepth")


def warn_random_weights(level: int = logging.WARNING) -> None:
    log.log(level, "backend: random weights (random_weights: true): the depth means nothing")


def load_dav2(
    choice: WeightsChoice, kind: ModelKind, cache_dir: Path, announce: bool = True
) -> tuple[DepthAnythingV2, ModelKey]:
    """The torch model and its :class:`ModelKey` (the checkpoint's sha256 or the random seed,
    and the options that shape the model). ``announce``: say what was loaded, and warn about it
    (off when reloading the same model)."""
    from edgedepth.models import dav2_checkpoint as ckpt
    from edgedepth.models.dav2 import ENCODERS, config_for

    info_level = logging.INFO if announce else logging.DEBUG
    warning_level = logging.WARNING if announce else logging.DEBUG
    key = model_key(choice, kind, cache_dir)
    if choice.random_weights:
        warn_random_weights(warning_level)
        config = config_for(key.encoder or "vits", kind, key.max_depth or RANDOM_MAX_DEPTH)
        return ckpt.random_model(config, choice.seed), key
    path = checkpoint_path(choice, kind, cache_dir)
    state, info = ckpt.read_checkpoint(path)
    if info.kind is not None and info.kind != kind:
        raise CheckpointError(
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
    max_depth = choice.max_depth or info.max_depth or default_max_depth(choice.dataset)
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
    return model, key
