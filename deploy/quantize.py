"""QDQ quantisation for the QNN HTP (w8a16 or int8) with ONNX Runtime's QNN quantisation tools,
calibrated on real frames."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgedepth.deploy.artifact import model_inputs, write_manifest
from edgedepth.deploy.compare import compare_depth
from edgedepth.ort_session import cpu_session
from edgedepth.progress import steps

log = logging.getLogger("edgedepth")

Scheme = Literal["w8a16", "int8"]


class _Frames:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input tensors."""

    def __init__(self, tensors: list[np.ndarray]) -> None:
        # The calibrator runs the model on each as it asks for it: a bar with an ETA.
        self.remaining = iter(steps(tensors, len(tensors), "calibrating"))

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self.remaining, None)
        return None if tensor is None else {"image": tensor}

    def rewind(self) -> None:  # pragma: no cover - used by some calibrators
        pass


def quantize_model(
    float_dir: Path,
    manifest: dict[str, Any],
    out_dir: Path,
    frames: list[np.ndarray],
    scheme: Scheme,
    calibration: str,
) -> dict[str, Any]:
    """Write ``out_dir/model.onnx`` (QDQ) beside a copy of the float model (``float.onnx``,
    the reference for accuracy), and report the CPU accuracy loss on the calibration frames."""
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    float_model = out_dir / "float.onnx"
    shutil.copyfile(float_dir / manifest.get("reference_model", "model.onnx"), float_model)
    tensors = model_inputs(frames, manifest)
    activation = QuantType.QUInt16 if scheme == "w8a16" else QuantType.QUInt8
    # The quantiser logs advice on the root logger (pre-processing, opset upgrade for 16-bit);
    # we do both, so keep it out of the user's terminal.
    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        source = prepared if qnn_preprocess_model(str(float_model), str(prepared)) else float_model
        config = get_qnn_qdq_config(
            str(source), _Frames(tensors), activation_type=activation, weight_type=QuantType.QUInt8
        )
        quantize(str(source), str(out_dir / "model.onnx"), config)
    root.setLevel(previous_level)
    float_session = cpu_session(float_model)
    quantized_session = cpu_session(out_dir / "model.onnx")
    reference = [float_session.run(None, {"image": t})[0] for t in tensors]
    quantized = [quantized_session.run(None, {"image": t})[0] for t in tensors]
    accuracy = compare_depth(quantized, reference)
    manifest = {
        **manifest,
        "run_model": "model.onnx",
        "reference_model": "float.onnx",
        "precision": "quantized",
        "quantization": {
            "scheme": scheme,
            "activations": "uint16" if scheme == "w8a16" else "uint8",
            "weights": "uint8",
            "calibration": calibration,
            "calibration_frames": len(frames),
            "cpu_accuracy_vs_float": accuracy,
        },
    }
    write_manifest(out_dir, manifest)
    return manifest
