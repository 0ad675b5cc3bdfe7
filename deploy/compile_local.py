"""Compile a model folder into a QNN context binary on this machine (onnxruntime-qnn carries the
HTP compiler; no Qualcomm account needed) and verify it against the float model."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.deploy.artifact import model_inputs, write_manifest
from edgedepth.deploy.compare import compare_depth
from edgedepth.errors import EdgedepthError
from edgedepth.ort_session import cpu_session, qnn_session
from edgedepth.progress import steps
from edgedepth.qnn import QnnOptions, qnn_versions

log = logging.getLogger("edgedepth")

CONTEXT_MODEL = "model_ctx.onnx"


def compile_local(
    model_dir: Path, manifest: dict[str, Any], out_dir: Path, qnn: QnnOptions
) -> dict[str, Any]:
    """Write ``out_dir/model_ctx.onnx`` (EPContext) + its ``.bin`` and a manifest whose
    ``run_model`` is the context model, so that ``backend.model: out_dir`` runs it."""
    if manifest.get("precision") == "quantized" and qnn.precision != "quantized":
        raise EdgedepthError(f"{model_dir} is quantised: compile it with --precision quantized")
    if manifest.get("precision") != "quantized" and qnn.precision == "quantized":
        raise EdgedepthError(
            f"{model_dir} is a float model: --precision quantized needs the output of "
            "`edgedepth deploy quantize` (--model DIR)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("model_ctx*"):
        stale.unlink()
    if model_dir.resolve() != out_dir.resolve():
        for name in {"model.onnx", manifest.get("reference_model", "model.onnx")}:
            shutil.copyfile(model_dir / name, out_dir / name)
    started = time.perf_counter()
    qnn_session(out_dir / "model.onnx", qnn, out_dir / CONTEXT_MODEL, offline=True)
    seconds = time.perf_counter() - started
    binaries = sorted(out_dir.glob("model_ctx*.bin"))
    if not (out_dir / CONTEXT_MODEL).exists() or not binaries:
        raise EdgedepthError(f"QNN wrote no context binary into {out_dir}")
    soc, arch = qnn.target
    package, qnn_sdk = qnn_versions()
    manifest = {
        **manifest,
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
    write_manifest(out_dir, manifest)
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
    out_dir: Path, manifest: dict[str, Any], frames: list[np.ndarray], qnn: QnnOptions
) -> dict[str, Any]:
    """Run the context binary on the HTP (the emulator off-device) and the float reference on
    the CPU on the same frames; record the comparison in the manifest."""
    inputs = model_inputs(frames, manifest)
    reference_session = cpu_session(out_dir / manifest.get("reference_model", "model.onnx"))
    reference = [reference_session.run(None, {"image": tensor})[0] for tensor in inputs]
    started = time.perf_counter()
    htp_session = qnn_session(out_dir / CONTEXT_MODEL, qnn)
    load_seconds = time.perf_counter() - started
    outputs, timings = [], []
    for tensor in steps(inputs, len(inputs), "verifying on the HTP"):
        started = time.perf_counter()
        outputs.append(htp_session.run(None, {"image": tensor})[0])
        timings.append(time.perf_counter() - started)
    numbers = compare_depth(outputs, reference)
    numbers["finite"] = bool(all(np.isfinite(output).all() for output in outputs))
    numbers["context_load_seconds"] = round(load_seconds, 3)
    numbers["htp_seconds_per_frame"] = round(float(np.median(timings)), 3)
    manifest = {**manifest, "verify": numbers}
    write_manifest(out_dir, manifest)
    return numbers
