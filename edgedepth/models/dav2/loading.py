"""The DepthAnythingV2 a config asks for, as a torch model: random weights, a given checkpoint,
or the official file (fetched into the cache), or ``random_weights: if-offline``: the official
file when it can be had, random weights otherwise. Shared by the DAv2 backends, the deploy tool
and the benchmarks; needs torch (imported when called). Which weights, and their identity,
without torch: :mod:`edgedepth.models.dav2.weights`."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from edgedepth.models.dav2.weights import (
    RANDOM_MAX_DEPTH,
    CheckpointError,
    ModelKey,
    ModelKind,
    WeightsChoice,
    default_max_depth,
    model_key,
    resolved_checkpoint,
)

if TYPE_CHECKING:
    from edgedepth.models.dav2.network import DepthAnythingV2

log = logging.getLogger("edgedepth")


class LoadedDAv2(NamedTuple):
    """What :func:`load_dav2` loaded."""

    model: DepthAnythingV2
    #: The weights' identity and the options that shape the model (an export's cache key).
    key: ModelKey
    #: The checkpoint file (the official one when it was fetched); None for random weights.
    checkpoint: Path | None


def load_dav2(
    choice: WeightsChoice, kind: ModelKind, cache_dir: Path, announce: bool = True
) -> LoadedDAv2:
    """The torch model, its :class:`ModelKey` and the file its weights came from.
    ``announce``: say what was loaded, and warn about it (off when reloading the same model)."""
    warning_level = logging.WARNING if announce else logging.DEBUG
    path = resolved_checkpoint(choice, kind, cache_dir, warning_level)
    return build_dav2(choice, kind, cache_dir, path, announce)


def build_dav2(
    choice: WeightsChoice,
    kind: ModelKind,
    cache_dir: Path,
    path: Path | None,
    announce: bool = True,
    key: ModelKey | None = None,
) -> LoadedDAv2:
    """:func:`load_dav2` with the weights already chosen (:func:`resolved_checkpoint`; None:
    random weights): a caller that builds the model again (another input size) takes the same
    weights without another download attempt or warning. ``key``: their :class:`ModelKey`,
    when the caller has it already (else computed: the checkpoint's hash)."""
    from edgedepth.models.dav2 import checkpoint as ckpt
    from edgedepth.models.dav2.network import ENCODERS, config_for

    info_level = logging.INFO if announce else logging.DEBUG
    warning_level = logging.WARNING if announce else logging.DEBUG
    key = key or model_key(choice, kind, cache_dir, path)
    if path is None:
        config = config_for(key.encoder or "vits", kind, key.max_depth or RANDOM_MAX_DEPTH)
        return LoadedDAv2(ckpt.random_model(config, choice.seed), key, None)
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
    return LoadedDAv2(model, key, path)
