"""int8 graphs for ONNX Runtime's CPU (``backend.precision: int8`` on onnx-cpu): dynamic
quantisation of every MatMul, written once beside the float graph and reused.

Why this form (measured on a 2-core AVX2 CPU, ViT-S, bench/int8.py): the linears and the
attention products become ``DynamicQuantizeMatMul`` (int8 weights per tensor, uint8 activations
quantised per run, no calibration), about 1.7× faster than float32 GEMM there, with ~0.3 %
relative error. Static QDQ or QOperator quantisation (MatMul + Conv, calibrated) ran no faster
than float and cost 9 % error with the DPT head's convolutions in int8; ``ConvInteger`` and
4/8-bit ``MatMulNBits`` were slower than float on AVX2. The convolutions of the head stay float.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import onnxruntime

from edgedepth.api.errors import EdgedepthError
from edgedepth.runtime.cache import cache_error, cache_folder

log = logging.getLogger("edgedepth")

#: How messages name the folder of an int8 graph.
INT8_CACHE = "the int8 cache"

#: What the int8 graph is made with (part of its file name: a change makes a new one).
SETTINGS = {
    "method": "dynamic",
    "op_types": ["MatMul"],
    "weights": "int8 per tensor",
    # Also the attention products (both inputs computed): faster at every size measured.
    "matmul_const_b_only": False,
    "onnxruntime": onnxruntime.__version__,
}


def int8_path(float_model: Path, folder: Path) -> Path:
    """Where the int8 graph of ``float_model`` is kept in ``folder``."""
    key = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode()).hexdigest()[:12]
    return folder / f"{float_model.stem}.int8-{key}.onnx"


def int8_model(float_model: Path, folder: Path) -> Path:
    """The int8 graph of ``float_model`` (made on first use, in ``folder``)."""
    target = int8_path(float_model, folder)
    if target.exists():
        return target
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise EdgedepthError(
            "precision int8 quantises the model with onnxruntime's tools, which need the onnx "
            "package: pip install 'edgedepth[int8]'"
        ) from None
    log.info("backend: quantising %s to int8 (once; kept as %s)", float_model, target)
    cache_folder(folder, INT8_CACHE)
    try:
        handle, staging = tempfile.mkstemp(dir=folder, prefix=".int8-", suffix=".onnx")
    except OSError as exc:
        raise cache_error(folder, INT8_CACHE, exc.strerror or str(exc)) from None
    os.close(handle)
    # The quantiser gives advice on the root logger (pre-processing): not for the user. It also
    # calls logging.basicConfig, whose root handler would print every later line of ours twice.
    root = logging.getLogger()
    previous_level, previous_handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            float_model,
            staging,
            op_types_to_quantize=SETTINGS["op_types"],
            weight_type=QuantType.QInt8,
            extra_options={
                "MatMulConstBOnly": SETTINGS["matmul_const_b_only"],
                "DefaultTensorType": onnx.TensorProto.FLOAT,
            },
        )
        os.replace(staging, target)
    except Exception as exc:
        raise EdgedepthError(f"{float_model}: cannot quantise it to int8: {exc}") from None
    finally:
        root.setLevel(previous_level)
        for handler in [h for h in root.handlers if h not in previous_handlers]:
            root.removeHandler(handler)
        Path(staging).unlink(missing_ok=True)
    return target
