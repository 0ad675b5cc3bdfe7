"""``precision: int8`` on the CPU (:mod:`edgedepth.runtime.int8`): the operators ONNX Runtime
really runs, the accuracy check against float and its fallbacks, and the per-channel
equalisation of LayerNorm outputs, on tiny DepthAnythingV2 graphs (random weights)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("transformers")

import onnxruntime as ort  # noqa: E402

from edgedepth.api.stages import BuildContext  # noqa: E402
from edgedepth.engine.registry import load_registry  # noqa: E402
from edgedepth.media.synthetic_scene import SyntheticScene, sample_images  # noqa: E402
from edgedepth.runtime import int8  # noqa: E402
from edgedepth.runtime.accuracy import compare_depth  # noqa: E402
from edgedepth.runtime.sessions import cpu_session  # noqa: E402
from tests.dav2_fixtures import TINY, hf_model  # noqa: E402

SIZE = (126, 126)
#: What the check accepts when the test wants the convolutions in int8 (the tiny random model's
#: int8 convolutions cost it ~2.4 % relative error, beyond the default 2 %).
LOOSE = {"delta1_agreement": 0.95, "relative_error": 0.05}


def tiny_graph(checkpoint: Path, cache: Path) -> tuple[Path, Any]:
    """The float32 export of ``checkpoint`` at 126² and the backend's model (bound to it)."""
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        {"checkpoint": str(checkpoint), "runtime": "onnx-cpu"},
        BuildContext(None, "file", cache, input_size=SIZE),
    )
    (graph,) = cache.glob("exports/*/model.onnx")
    return graph, backend.model


def calibration_of(model: Any) -> int8.Calibration:
    """What the backend calibrates and checks with: its model on the synthetic scene."""

    def feeds(count: int) -> list[dict[str, np.ndarray]]:
        return [model.inputs(image) for image in sample_images(*SIZE, count)]

    return int8.Calibration(feeds, model.depth)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("int8")
    hf_model("relative", TINY).save_pretrained(folder / "hf")
    return tiny_graph(folder / "hf", folder / "cache")


@pytest.fixture(scope="module")
def tiny_with_outliers(tmp_path_factory) -> tuple[Path, Any]:
    """The tiny model with DINOv2-like outlier channels: two channels of every LayerNorm's
    scale 30× the rest, so two channels of each norm's output dwarf the others."""
    folder = tmp_path_factory.mktemp("outliers")
    model = hf_model("relative", TINY)
    with torch.no_grad():
        for layer in model.backbone.encoder.layer:
            for norm in (layer.norm1, layer.norm2):
                norm.weight[[3, 17]] = 30.0
    model.save_pretrained(folder / "hf")
    return tiny_graph(folder / "hf", folder / "cache")


def other_frames(count: int) -> list[np.ndarray]:
    """Frames the check never saw: another scene, another camera path."""
    scene = SyntheticScene(seed=7, width=SIZE[1], height=SIZE[0], motion="dolly")
    return [scene.render(index * 9)[0].astype(np.float32) for index in range(count)]


def depths(graph: Path, model: Any, images: list[np.ndarray]) -> list[np.ndarray]:
    """The depth of ``graph`` for each image (H×W×3, 0–255), through the backend's model."""
    session = cpu_session(graph)
    names = [output.name for output in session.get_outputs()]
    return [
        model.depth(dict(zip(names, session.run(None, model.inputs(image)), strict=True)))
        for image in images
    ]


def operators_run(graph: Path, folder: Path) -> Counter:
    """The operators of the graph ONNX Runtime runs (after its own fusions)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(folder / "as-run.onnx")
    ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return Counter(node.op_type for node in onnx.load(folder / "as-run.onnx").graph.node)


def test_int8_graph_runs_int8_kernels_and_stays_within_its_bound(tmp_path, tiny):
    """With the convolutions accepted, ONNX Runtime runs every MatMul as DynamicQuantizeMatMul
    and every convolution but the patch embedding as QLinearConv; on frames the check never
    saw the depth keeps the bound it was checked against. The default bound refuses the tiny
    model's int8 convolutions and keeps int8 MatMuls, within the default bound."""
    graph, model = tiny
    calibration = calibration_of(model)
    source = Counter(node.op_type for node in onnx.load(graph).graph.node)
    both = int8.int8_model(graph, tmp_path / "loose", calibration, LOOSE)
    assert int8.int8_report(both)["int8"] == "MatMul+Conv"
    ran = operators_run(both, tmp_path)
    assert ran["DynamicQuantizeMatMul"] == source["MatMul"]
    assert ran["QLinearConv"] == source["Conv"] - 1  # the patch embedding reads the input
    assert not {"MatMul", "Gemm", "FusedMatMul", "QLinearSoftmax"} & set(ran)
    frames = other_frames(6)
    reference = depths(graph, model, frames)
    assert int8.within(compare_depth(depths(both, model, frames), reference), LOOSE)

    shipped = int8.int8_model(graph, tmp_path / "default", calibration)
    report = int8.int8_report(shipped)
    assert report["int8"] == "MatMul"
    assert not int8.within(report["candidates"]["MatMul+Conv"], int8.BOUND)
    ran = operators_run(shipped, tmp_path)
    assert ran["DynamicQuantizeMatMul"] == source["MatMul"] and "QLinearConv" not in ran
    numbers = compare_depth(depths(shipped, model, frames), reference)
    assert int8.within(numbers, int8.BOUND), numbers
    assert numbers["relative_error"] > 0  # it is another graph


def test_int8_check_falls_back_and_warns_when_nothing_keeps_the_bound(tmp_path, tiny, caplog):
    graph, model = tiny
    calibration = calibration_of(model)
    impossible = {"delta1_agreement": 1.0, "relative_error": 0.0}
    with caplog.at_level(logging.INFO, logger="edgedepth"):
        kept = int8.int8_model(graph, tmp_path, calibration, impossible)
    report = int8.int8_report(kept)
    assert list(report["candidates"]) == ["MatMul+Conv", "MatMul", "MatMul but attention×V"]
    assert report["int8"] == "MatMul but attention×V"
    ran = operators_run(kept, tmp_path)
    assert ran["MatMul"] + ran["FusedMatMul"] == TINY["num_hidden_layers"]  # attention × V
    assert "differs from float beyond δ1 100 %" in caplog.text
    assert caplog.text.count("→ not kept") == 2


def test_layernorm_equalisation_is_exact_and_tames_outlier_channels(tmp_path, tiny_with_outliers):
    """Per-channel smoothing of the LayerNorm outputs (SmoothQuant) changes no float result,
    and with DINOv2-like outlier channels halves the error of the int8 MatMuls behind them
    (measured: 9.2 % → 4.5 % relative error)."""
    graph, model = tiny_with_outliers
    calibration = calibration_of(model)
    prepared = int8.prepare(graph, tmp_path / "prepared.onnx")
    feeds = calibration.feeds(int8.CALIBRATION_FRAMES)
    equalised = tmp_path / "equalised.onnx"
    norms = int8.equalise_norm_outputs(prepared, feeds, equalised)
    assert norms == 2 * TINY["num_hidden_layers"]
    frames = other_frames(4)
    reference = depths(graph, model, frames)
    exact = compare_depth(depths(equalised, model, frames), reference)
    assert exact["relative_error"] < 1e-5, exact
    plain = int8._dynamic_matmuls(prepared, tmp_path / "plain-int8.onnx")
    smoothed = int8._dynamic_matmuls(equalised, tmp_path / "equalised-int8.onnx")
    plain_error = compare_depth(depths(plain, model, frames), reference)["relative_error"]
    error = compare_depth(depths(smoothed, model, frames), reference)["relative_error"]
    assert error < 0.7 * plain_error, (error, plain_error)
