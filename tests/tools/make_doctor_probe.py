"""Writes edgedepth/system/doctor_probe.onnx, the model `edgedepth doctor --verify` compiles for
the NPU
(the runtime has no onnx package to build one; tests/test_doctor.py checks the committed file is
exactly what this writes). The operators of a ViT depth model at toy size: strided conv patch
embedding, layer norm, single-head attention (MatMul, Softmax), an MLP with Erf-GELU, bilinear
upsampling and a conv head; 0–255 input normalised inside, like edgedepth's exported graphs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from the repo
from tests.onnx_models import depth_model

SIZE, PATCH, WIDTH = 64, 8, 32
TOKENS = (SIZE // PATCH) ** 2


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(20251125)

    def weight(name: str, *shape: int, fan_in: int | None = None) -> str:
        scale = 1.0 / np.sqrt(fan_in or shape[-1])
        initializers.append(
            numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(value, name))
        return name

    initializers: list[onnx.TensorProto] = []
    grid = SIZE // PATCH
    n = helper.make_node
    nodes = [
        n("Mul", ["image", constant("inv255", np.array([1 / 255], np.float32))], ["x01"]),
        n("Conv", ["x01", weight("patch_w", WIDTH, 3, PATCH, PATCH, fan_in=3 * PATCH * PATCH)],
          ["patches"], strides=[PATCH, PATCH]),
        n("Reshape", ["patches", constant("to_tokens", np.array([1, WIDTH, TOKENS], np.int64))],
          ["tokens_t"]),
        n("Transpose", ["tokens_t"], ["tokens"], perm=[0, 2, 1]),
        n("LayerNormalization", ["tokens", constant("ln_g", np.ones(WIDTH, np.float32)),
                                 constant("ln_b", np.zeros(WIDTH, np.float32))], ["normed"],
          axis=-1, epsilon=1e-6),
        n("MatMul", ["normed", weight("wq", WIDTH, WIDTH)], ["q"]),
        n("MatMul", ["normed", weight("wk", WIDTH, WIDTH)], ["k"]),
        n("MatMul", ["normed", weight("wv", WIDTH, WIDTH)], ["v"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["scores_raw"]),
        n("Mul", ["scores_raw", constant("scale", np.array([WIDTH**-0.5], np.float32))],
          ["scores"]),
        n("Softmax", ["scores"], ["attention"], axis=-1),
        n("MatMul", ["attention", "v"], ["mixed"]),
        n("Add", ["tokens", "mixed"], ["residual"]),
        n("MatMul", ["residual", weight("fc1", WIDTH, 2 * WIDTH)], ["hidden"]),
        # GELU as erf (opset 17 has no Gelu op): 0.5 x (1 + erf(x / sqrt 2))
        n("Mul", ["hidden", constant("inv_sqrt2", np.array([2**-0.5], np.float32))], ["h1"]),
        n("Erf", ["h1"], ["h2"]),
        n("Add", ["h2", constant("one", np.array([1.0], np.float32))], ["h3"]),
        n("Mul", ["hidden", "h3"], ["h4"]),
        n("Mul", ["h4", constant("half", np.array([0.5], np.float32))], ["gelu"]),
        n("MatMul", ["gelu", weight("fc2", 2 * WIDTH, WIDTH)], ["mlp"]),
        n("Add", ["residual", "mlp"], ["features"]),
        n("Transpose", ["features"], ["features_t"], perm=[0, 2, 1]),
        n("Reshape", ["features_t", constant("to_grid", np.array([1, WIDTH, grid, grid],
                                                                  np.int64))], ["grid"]),
        n("Resize", ["grid", "", constant("up", np.array([1, 1, PATCH, PATCH], np.float32))],
          ["upsampled"], mode="linear", coordinate_transformation_mode="align_corners"),
        n("Conv", ["upsampled", weight("head_w", 1, WIDTH, 3, 3, fan_in=WIDTH * 9)], ["head"],
          pads=[1, 1, 1, 1]),
        n("Relu", ["head"], ["depth"]),
    ]  # fmt: skip
    model = depth_model(nodes, initializers, SIZE, "doctor_probe", producer_name="edgedepth")
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("edgedepth/system/doctor_probe.onnx")
    target.write_bytes(build().SerializeToString())
