"""QDQ quantisation for the QNN HTP (w8a16 or int8) with ONNX Runtime's QNN quantisation tools,
calibrated on real frames."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from edgedepth.deploy.artifact import Feeds, depth_maps
from edgedepth.engine.progress import steps
from edgedepth.runtime.accuracy import compare_depth
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.onnx_backend import DepthModel
from edgedepth.runtime.sessions import cpu_session

log = logging.getLogger("edgedepth")

Scheme = Literal["w8a16", "int8"]


class _Frames:
    """ONNX Runtime's CalibrationDataReader protocol over the graph's inputs for each frame."""

    def __init__(self, feeds: list[Feeds]) -> None:
        # The calibrator runs the model on each as it asks for it: a bar with an ETA.
        self.remaining = iter(steps(feeds, len(feeds), "calibrating"))

    def get_next(self) -> Feeds | None:
        return next(self.remaining, None)

    def rewind(self) -> None:  # pragma: no cover - used by some calibrators
        pass


def quantize_model(
    float_dir: Path,
    manifest: Manifest,
    out_dir: Path,
    model: DepthModel,
    feeds: list[Feeds],
    scheme: Scheme,
    calibration: str,
) -> Manifest:
    """Write ``out_dir/model.onnx`` (QDQ) beside a copy of the float model (``float.onnx``,
    the reference for accuracy), and report the CPU accuracy loss on the calibration frames."""
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    float_model = out_dir / "float.onnx"
    shutil.copyfile(float_dir / (manifest.reference_model or "model.onnx"), float_model)
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
            str(source), _Frames(feeds), activation_type=activation, weight_type=QuantType.QUInt8
        )
        quantize(str(source), str(out_dir / "model.onnx"), config)
    root.setLevel(previous_level)
    reference = depth_maps(model, cpu_session(float_model), feeds)
    quantized = depth_maps(model, cpu_session(out_dir / "model.onnx"), feeds)
    accuracy = compare_depth(quantized, reference)
    manifest = manifest.model_copy(
        update={
            "run_model": "model.onnx",
            "reference_model": "float.onnx",
            "precision": "quantized",
            "quantization": {
                "scheme": scheme,
                "activations": "uint16" if scheme == "w8a16" else "uint8",
                "weights": "uint8",
                "calibration": calibration,
                "calibration_frames": len(feeds),
                "cpu_accuracy_vs_float": accuracy,
            },
        }
    )
    manifest.write(out_dir)
    return manifest
