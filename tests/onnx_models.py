"""Small ONNX graphs the tests build with the ``onnx`` helpers (no torch): the depth graph's
contract (``image`` 1×3×H×W float32 in, ``depth`` 1×1×H×W out) with as much work as a test
needs, e.g. slow enough to be interrupted mid-inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_stack(path: Path, layers: int, channels: int = 64, size: int = 126, seed: int = 0) -> Path:
    """``layers`` 3×3 convolutions + ReLU on ``size``² images, then a 1×1 conv to one positive
    channel."""
    rng = np.random.default_rng(seed)
    weights, nodes = [], []
    previous, in_channels = "image", 3
    for index in range(layers):
        scale = np.sqrt(2.0 / (in_channels * 9))  # keeps activations finite through the stack
        kernel = (rng.standard_normal((channels, in_channels, 3, 3)) * scale).astype(np.float32)
        weights.append(numpy_helper.from_array(kernel, f"w{index}"))
        nodes.append(
            helper.make_node("Conv", [previous, f"w{index}"], [f"c{index}"], pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        previous, in_channels = f"r{index}", channels
    head = (rng.standard_normal((1, in_channels, 1, 1)) / np.sqrt(in_channels)).astype(np.float32)
    weights.append(numpy_helper.from_array(head, "head"))
    weights.append(numpy_helper.from_array(np.ones((1,), np.float32), "one"))
    nodes.append(helper.make_node("Conv", [previous, "head"], ["head_out"]))
    # Positive like a disparity map (δ1 agreement compares ratios).
    nodes.append(helper.make_node("Relu", ["head_out"], ["head_relu"]))
    nodes.append(helper.make_node("Add", ["head_relu", "one"], ["depth"]))
    onnx.save(depth_model(nodes, weights, size, "conv_stack"), str(path))
    return path


def depth_model(
    nodes: list[onnx.NodeProto], weights: list[onnx.TensorProto], size: int, name: str, **kwargs
) -> onnx.ModelProto:
    """A model with the depth graph's contract around ``nodes`` (``image`` 1×3×size² in,
    ``depth`` 1×1×size² out), opset 17 / IR 8 as ONNX Runtime and onnxruntime-qnn take it."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, size, size])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **kwargs)
    model.ir_version = 8
    return model


def depth_model_folder(folder: Path, size: int = 32, layers: int = 2) -> Path:
    """A model folder as `edgedepth deploy export` leaves it (model.onnx + manifest.json), with a
    small conv stack standing in for DepthAnythingV2: the deploy tool only reads the contract."""
    folder.mkdir(parents=True, exist_ok=True)
    conv_stack(folder / "model.onnx", layers=layers, channels=8, size=size)
    tensor = {"dtype": "float32", "layout": "NCHW RGB"}
    manifest = {
        "inputs": [{"name": "image", "shape": [1, 3, size, size], **tensor, "range": [0, 255]}],
        "outputs": [{"name": "depth", "shape": [1, 1, size, size], "dtype": "float32"}],
        "model": {"encoder": "custom", "kind": "relative"},
        "depth_kind": "relative-disparity",
        "graph": {"normalize": True},
        "run_model": "model.onnx",
        "reference_model": "model.onnx",
        "precision": "float32",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder
