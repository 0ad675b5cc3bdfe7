"""ONNX Runtime sessions on the CPU and on Qualcomm's QNN execution provider (HTP), the latter
compiled once into a cached context binary. The EP itself (options, device, versions):
:mod:`edgedepth.runtime.qnn`."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.engine.progress import long_call
from edgedepth.runtime.cache import cache_folder
from edgedepth.runtime.model_file import is_context_model
from edgedepth.runtime.options import QnnOptions
from edgedepth.runtime.qnn import announce_emulator, check_context_version, qnn_target

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("edgedepth")


def _quiet_onnxruntime() -> None:
    """ONNX Runtime's own log lines (the emulator's "file mapped weights" notice, a failed QNN
    compile's details) are for ``--debug``: errors reach the user as our one-line exceptions."""
    import onnxruntime as ort

    ort.set_default_logger_severity(2 if log.isEnabledFor(logging.DEBUG) else 4)


# --- sessions ------------------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the
    machine has): a CPU session's threads unless told otherwise."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_session(model_path: Path, threads: int | None = None) -> ort.InferenceSession:
    import onnxruntime as ort

    _quiet_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Default: one thread per core. The other stages mostly wait in C code (decode, encode),
    # and the backend is the slowest stage, so it gets the whole machine.
    options.intra_op_num_threads = threads or usable_cores()
    # Idle ONNX Runtime threads would spin-wait for work, taking the CPU from the other stages
    # (decode, colourise, encode) that run at the same time in the pipeline.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The memory pattern plans one block for every activation of a run up front: about 160 MB
    # more peak for ViT-S at 518×686 than the arena's reuse alone, for no measured speed gain.
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise EdgedepthError(f"{model_path}: ONNX Runtime cannot load the model: {exc}") from None


def _compile_progress(
    source: Path, loads_context: bool, tag: str, free_dimensions: dict[str, int] | None
) -> contextlib.AbstractContextManager[Any]:
    """A bar with an estimate while QNN compiles ``source`` (loading a context binary takes
    well under a second: no bar)."""
    if loads_context:
        return contextlib.nullcontext()
    size = source.stat().st_size
    what = f"{source.name}:{size}:{free_dimensions or ''}:{tag}"
    return long_call(f"qnn: compiling {source.name} for the HTP", "qnn-compile", what, size)


def qnn_session(
    model_path: Path,
    options: QnnOptions,
    context_path: Path | None = None,
    *,
    offline: bool = False,
    free_dimensions: dict[str, int] | None = None,
    is_context: bool | None = None,
) -> ort.InferenceSession:
    """A session on the HTP. With ``context_path`` (and ``context_cache``): load the EPContext
    model there if it exists, else compile ``model_path`` and write it there. ``offline``
    compiles for the chip the options name even on a real NPU (``deploy compile --local``).
    ``free_dimensions``: symbolic input sizes fixed by name (the HTP takes static shapes).
    ``is_context``: whether ``model_path`` is an EPContext model, when the caller knows."""
    import onnxruntime as ort

    _quiet_onnxruntime()
    target = qnn_target()
    announce_emulator(target)
    if target.npu and options.names_a_chip and not offline:
        log.info(
            "qnn: %s: the driver picks the HTP; qnn.device/soc_model/htp_arch apply to the "
            "emulator and offline compiles only",
            target.description,
        )
    checked = False  # the context binary's QNN version
    if context_path is not None and options.context_cache and context_path.exists():
        source, compile_to = context_path, None
        try:
            check_context_version(context_path)
            checked = True
        except EdgedepthError as stale:  # a cache from a newer onnxruntime-qnn: rebuild it
            log.info("qnn: recompiling the cached context binary: %s", stale)
            source, compile_to = model_path, context_path
    elif context_path is not None and options.context_cache:
        source, compile_to = model_path, context_path
    else:
        source, compile_to = model_path, None
    if source == context_path:
        loads_context = True
    elif compile_to is not None:
        loads_context = False
    else:
        loads_context = is_context_model(source) if is_context is None else is_context
    if compile_to is None and loads_context and not checked:
        check_context_version(source)
    session_options = ort.SessionOptions()
    for name, value in (free_dimensions or {}).items():
        session_options.add_free_dimension_override_by_name(name, value)
    if not options.cpu_fallback:
        session_options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if compile_to is not None:
        cache_folder(compile_to.parent, "the QNN context cache")
        # The EP does not overwrite an existing context model (a stale cache being rebuilt).
        for stale_file in [compile_to, *compile_to.parent.glob(f"{compile_to.stem}*.bin")]:
            stale_file.unlink(missing_ok=True)
        session_options.add_session_config_entry("ep.context_enable", "1")
        session_options.add_session_config_entry("ep.context_file_path", str(compile_to))
        session_options.add_session_config_entry("ep.context_embed_mode", "0")
    session_options.add_provider_for_devices(
        [target.ep_device], options.provider_option_strings(on_npu=target.npu, offline=offline)
    )
    started = time.perf_counter()
    try:
        with _compile_progress(source, loads_context, options.context_tag(target), free_dimensions):
            session = ort.InferenceSession(str(source), sess_options=session_options)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgedepthError(
            f"{source}: QNN ({options.context_tag(target)}) cannot compile or load the model: "
            f"{message}"
        ) from None
    seconds = time.perf_counter() - started
    if compile_to is None and loads_context:
        log.info("qnn: loaded context binary %s in %.1f s", source, seconds)
    elif compile_to is not None:
        log.info("qnn: compiled in %.1f s, context binary written to %s", seconds, compile_to)
    else:
        log.info("qnn: compiled in %.1f s (context cache off)", seconds)
    return session
