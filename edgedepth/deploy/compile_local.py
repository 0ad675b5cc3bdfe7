"""Compile a model folder into a QNN context binary on this machine (onnxruntime-qnn carries the
HTP compiler; no Qualcomm account needed) and verify it against the float model."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.deploy.artifact import Feeds, depth_maps
from edgedepth.engine.progress import steps
from edgedepth.runtime.accuracy import compare_depth
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.onnx_backend import DepthModel
from edgedepth.runtime.options import QnnOptions
from edgedepth.runtime.qnn import qnn_versions
from edgedepth.runtime.sessions import cpu_session, qnn_session

log = logging.getLogger("edgedepth")

CONTEXT_MODEL = "model_ctx.onnx"


def compile_local(model_dir: Path, manifest: Manifest, out_dir: Path, qnn: QnnOptions) -> Manifest:
    """Write ``out_dir/model_ctx.onnx`` (EPContext) + its ``.bin`` and a manifest whose
    ``run_model`` is the context model, so that ``backend.model: out_dir`` runs it."""
    if manifest.precision == "quantized" and qnn.precision != "quantized":
        raise EdgedepthError(f"{model_dir} is quantised: compile it with --precision quantized")
    if manifest.precision != "quantized" and qnn.precision == "quantized":
        raise EdgedepthError(
            f"{model_dir} is a float model: --precision quantized needs the output of "
            "`edgedepth deploy quantize` (--model DIR)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("model_ctx*"):
        stale.unlink()
    if model_dir.resolve() != out_dir.resolve():
        for name in {"model.onnx", manifest.reference_model or "model.onnx"}:
            shutil.copyfile(model_dir / name, out_dir / name)
    started = time.perf_counter()
    qnn_session(out_dir / "model.onnx", qnn, out_dir / CONTEXT_MODEL, offline=True)
    seconds = time.perf_counter() - started
    binaries = sorted(out_dir.glob("model_ctx*.bin"))
    if not (out_dir / CONTEXT_MODEL).exists() or not binaries:
        raise EdgedepthError(f"QNN wrote no context binary into {out_dir}")
    soc, arch = qnn.target
    package, qnn_sdk = qnn_versions()
    manifest = manifest.model_copy(
        update={
            "run_model": CONTEXT_MODEL,
            "qnn": {
                "device": qnn.device,
                "onnxruntime_qnn": package,
                "qnn_sdk": qnn_sdk,
                "soc_model": soc,
                "htp_arch": arch,
                "precision": qnn.precision,
                "context_binary": binaries[0].name,
                "context_binary_bytes": binaries[0].stat().st_size,
                "compile_seconds": round(seconds, 2),
            },
        }
    )
    manifest.write(out_dir)
    log.info(
        "compiled for %s (soc_model %d, htp_arch %d) in %.1f s: %s (%.1f MB)",
        qnn.device,
        soc,
        arch,
        seconds,
        binaries[0].name,
        binaries[0].stat().st_size / 1e6,
    )
    return manifest


def verify_local(
    out_dir: Path, manifest: Manifest, model: DepthModel, feeds: list[Feeds], qnn: QnnOptions
) -> dict[str, Any]:
    """Run the context binary on the HTP (the emulator off-device) and the float reference on
    the CPU on the same frames; record the comparison of their depth in the manifest."""
    reference_session = cpu_session(out_dir / (manifest.reference_model or "model.onnx"))
    reference = depth_maps(model, reference_session, feeds)
    started = time.perf_counter()
    htp_session = qnn_session(out_dir / CONTEXT_MODEL, qnn)
    load_seconds = time.perf_counter() - started
    outputs, timings = [], []
    for feed in steps(feeds, len(feeds), "verifying on the HTP"):
        started = time.perf_counter()
        outputs += depth_maps(model, htp_session, [feed])
        timings.append(time.perf_counter() - started)
    numbers = compare_depth(outputs, reference)
    numbers["finite"] = bool(all(np.isfinite(output).all() for output in outputs))
    numbers["context_load_seconds"] = round(load_seconds, 3)
    numbers["htp_seconds_per_frame"] = round(float(np.median(timings)), 3)
    manifest.verify = numbers
    manifest.write(out_dir)
    return numbers
