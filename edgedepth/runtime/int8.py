"""int8 graphs for ONNX Runtime's CPU (``backend.precision: int8`` on onnx-cpu), for any ONNX
model: made once beside the float graph, checked against it, and reused.

How (each step measured by ONNX Runtime's op profile on a 2-core AMD EPYC with AVX-512 VNNI,
ViT-S DepthAnythingV2 with random weights, ONNX Runtime 1.32; numbers in bench/RESULTS.md):

1. Prepare: ONNX Runtime's basic optimisations (constants folded, Identity chains removed),
   ``MatMul + Add`` left unfused so that the quantiser sees every MatMul.
2. Equalise: where a LayerNorm feeds only MatMuls with constant weights, its outputs are
   smoothed per channel (SmoothQuant, α = 0.75; exact in float): real DINOv2 weights have a
   few outlier channels there, which would otherwise set the one activation scale of the int8
   MatMuls behind the norm. With two channels 30× the rest (tiny ViT) the int8 MatMuls' error
   went 9.2 % → 4.5 %; with random ViT-S weights (no outliers) it changes nothing (0.7 %).
3. MatMuls, all of them (the linears and both attention products): dynamic, int8 weights per
   output column, uint8 activations scaled per tensor on every run. ONNX Runtime runs them as
   ``DynamicQuantizeMatMul`` on its VNNI int8 GEMM: 2.4× less time than float's Gemm + MatMul
   at 350². Static (calibrated) MatMul QDQ did not pay: ONNX Runtime 1.32 does not fuse it with
   per-channel weights (it dequantised the weights on every run and ran float Gemm), and its
   output quantisation turned Softmax into ``QLinearSoftmax``, 3–7× slower than float Softmax.
4. Convolutions but the first layer (the one reading the graph's input through no weighted
   layer: a ViT's patch embedding, 3.7 % error on its own): static QDQ, int8 weights per output
   channel, uint8 activations calibrated (MinMax) on frames the backend's own model makes from
   the synthetic scene. ONNX Runtime fuses them into ``QLinearConv`` (ReLU folded in): the DPT
   head's convolutions took ~5× less time than in float (51 vs 274 ms at 350²).
5. Check: the depth against float on other synthetic frames, against :data:`BOUND` (δ1 ≥ 0.99,
   relative L2 error ≤ 2 %). The first candidate that keeps it is kept: MatMul + Conv, then
   MatMul only, then MatMul but attention × V (post-softmax probabilities, the distribution one
   uint8 scale serves worst); if none does, the last is kept with a warning. The numbers are
   kept beside the graph (``<graph>.json``) and logged.

What that gives on random ViT-S weights: int8 convolutions cost 3.5 % relative error and
δ1 0.97 (the depth's near-zero pixels), so the check keeps int8 MatMuls only: 1.46–1.75× float
at 350², 1.47× at 518×686, 0.7 % error, δ1 0.995; with the convolutions too 1.63–2.13× /
1.76× (bench/int8.py measures both; the machine was loaded). The goals (2× / 1.8× with
δ1 ≥ 0.99) are not met together: the float rest (the head's convolutions, Softmax, GELU,
transposes, resizes, the first layer) bounds the whole.
Softmax, LayerNorm, GELU and the residual adds stay float. ``ConvInteger`` (dynamic
convolutions) and ``QLinearSoftmax`` were slower than float; 4/8-bit ``MatMulNBits`` is for
weight-only LLM decoding. Real weights are checked on the user's own weights when the graph is
made: the check runs the user's model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.engine.progress import long_call
from edgedepth.runtime.accuracy import compare_depth
from edgedepth.runtime.cache import cache_error, cache_folder
from edgedepth.runtime.sessions import cpu_session

log = logging.getLogger("edgedepth")

#: How messages name the folder of an int8 graph.
INT8_CACHE = "the int8 cache"

Feeds = dict[str, np.ndarray]

#: Frames the activation ranges are calibrated on, and other frames the result is checked on.
CALIBRATION_FRAMES = 8
CHECK_FRAMES = 4
#: SmoothQuant's migration strength (how much of an outlier channel moves into the weights).
ALPHA = 0.75
#: What the int8 depth must keep against float on the check frames.
BOUND = {"delta1_agreement": 0.99, "relative_error": 0.02}

#: What the int8 graph is made with (part of its file name: a change makes a new one).
SETTINGS = {
    "method": "guarded: MatMul + Conv, else MatMul, else MatMul but attention x V",
    "prepare": "onnxruntime basic optimisations without MatMulAddFusion",
    "matmul": "dynamic, every MatMul, int8 weights per column, uint8 activations per tensor",
    "equalise": f"LayerNorm outputs feeding MatMuls, per channel, SmoothQuant alpha {ALPHA}",
    "conv": "static QDQ, not the first layers, int8 weights per channel, uint8 MinMax",
    "calibration_frames": CALIBRATION_FRAMES,
    "check_frames": CHECK_FRAMES,
    "bound": BOUND,
}


def settings() -> dict[str, object]:
    """:data:`SETTINGS` and the ONNX Runtime that quantises (a new version makes a new graph)."""
    import onnxruntime

    return {**SETTINGS, "onnxruntime": onnxruntime.__version__}


@dataclass(frozen=True)
class Calibration:
    """What the model gives the quantiser: ``feeds(count)`` → the graph's inputs for ``count``
    different frames (e.g. the synthetic scene through the model's ``inputs``), and ``depth``
    → the depth map from the graph's outputs by name (what the check compares)."""

    feeds: Callable[[int], list[Feeds]]
    depth: Callable[[dict[str, np.ndarray]], np.ndarray]


def int8_path(float_model: Path, folder: Path, bound: dict[str, float] | None = None) -> Path:
    """Where the int8 graph of ``float_model`` (checked against ``bound``) is kept in
    ``folder``."""
    key_settings = {**settings(), "bound": bound or BOUND}
    key = hashlib.sha256(json.dumps(key_settings, sort_keys=True).encode()).hexdigest()[:12]
    return folder / f"{float_model.stem}.int8-{key}.onnx"


def int8_report(int8_graph: Path) -> dict:
    """What was quantised and how close it came to float (written beside the graph)."""
    return json.loads(int8_graph.with_suffix(".json").read_text())


def int8_model(
    float_model: Path,
    folder: Path,
    calibration: Calibration | None = None,
    bound: dict[str, float] | None = None,
) -> Path:
    """The int8 graph of ``float_model`` (made on first use, in ``folder``). Without
    ``calibration`` only the MatMuls are quantised (nothing to calibrate or check on).
    ``bound`` replaces :data:`BOUND` (e.g. benchmarks of what the check would refuse)."""
    target = int8_path(float_model, folder, bound)
    if target.exists():
        return target
    try:
        from onnxruntime import quantization  # noqa: F401
    except ImportError:
        raise EdgedepthError(
            "precision int8 quantises the model with onnxruntime's tools, which need the onnx "
            "package: pip install 'edgedepth[int8]'"
        ) from None
    log.info("backend: quantising %s to int8 (once; kept as %s)", float_model, target)
    cache_folder(folder, INT8_CACHE)
    try:
        work = Path(tempfile.mkdtemp(dir=folder, prefix=".int8-"))
    except OSError as exc:
        raise cache_error(folder, INT8_CACHE, exc.strerror or str(exc)) from None
    size = float_model.stat().st_size
    what = f"{float_model.name}:{size}"
    try:
        with (
            long_call("backend: quantising to int8 and checking it", "int8", what, size),
            _quiet_quantiser(),
        ):
            graph, report = _quantise(float_model, work, calibration, bound or BOUND)
            target.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
            os.replace(graph, target)
    except EdgedepthError:
        raise
    except Exception as exc:
        raise EdgedepthError(f"{float_model}: cannot quantise it to int8: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _log_report(report)
    return target


def _log_report(report: dict) -> None:
    """One line per candidate tried: how close to float, and which one is kept."""
    bound = report["bound"]
    for name, numbers in report["candidates"].items():
        log.info(
            "backend: int8 %s against float on %d synthetic frames: δ1 %.2f %%, relative error "
            "%.2f %% → %s",
            name,
            numbers["frames"],
            100 * numbers["delta1_agreement"],
            100 * numbers["relative_error"],
            "kept" if name == report["int8"] else "not kept",
        )
    if not report["candidates"]:
        log.info("backend: int8 %s (%s)", report["int8"], report["note"])
    elif not within(report["candidates"][report["int8"]], bound):
        log.warning(
            "backend: int8 depth differs from float beyond δ1 %g %% / relative error %g %% on "
            "this model: check it on your frames, or use precision: float32",
            100 * bound["delta1_agreement"],
            100 * bound["relative_error"],
        )


def _quantise(
    float_model: Path, work: Path, calibration: Calibration | None, bound: dict[str, float]
) -> tuple[Path, dict]:
    """The int8 graph (in ``work``) and its report: the first candidate whose depth keeps
    ``bound`` against float on the check frames (MatMul + Conv, MatMul, MatMul but attention ×
    V), else the last."""
    prepared = prepare(float_model, work / "prepared.onnx")
    convs = quantizable_convs(prepared)
    report: dict = {"settings": settings(), "bound": bound, "candidates": {}}
    if calibration is None:
        report["int8"] = "MatMul"
        report["note"] = "no calibration frames: MatMuls only, not checked against float"
        return _dynamic_matmuls(prepared, work / "matmul.onnx"), report
    feeds = calibration.feeds(CALIBRATION_FRAMES + CHECK_FRAMES)
    calibrate, check = feeds[:CALIBRATION_FRAMES], feeds[CALIBRATION_FRAMES:]
    reference = _depths(float_model, check, calibration)
    report["equalised_norms"] = equalise_norm_outputs(prepared, calibrate, prepared)
    after_softmax = softmax_products(prepared)
    candidates: list[tuple[str, Callable[[], Path]]] = []
    if convs:
        candidates.append(
            (
                "MatMul+Conv",
                lambda: _dynamic_matmuls(
                    _static_convs(prepared, convs, calibrate, work / "conv.onnx"),
                    work / "matmul-conv.onnx",
                ),
            )
        )
    candidates.append(("MatMul", lambda: _dynamic_matmuls(prepared, work / "matmul.onnx")))
    if after_softmax:
        candidates.append(
            (
                "MatMul but attention×V",
                lambda: _dynamic_matmuls(prepared, work / "no-softmax.onnx", after_softmax),
            )
        )
    for name, make in candidates:
        graph = make()
        numbers = compare_depth(_depths(graph, check, calibration), reference)
        report["candidates"][name] = numbers
        if within(numbers, bound) or name == candidates[-1][0]:
            report["int8"] = name
            return graph, report
    raise AssertionError("unreachable: the last candidate is always kept")


def within(numbers: dict[str, float], bound: dict[str, float]) -> bool:
    """Whether a comparison with float keeps ``bound``."""
    return (
        numbers["delta1_agreement"] >= bound["delta1_agreement"]
        and numbers["relative_error"] <= bound["relative_error"]
    )


def prepare(float_model: Path, out: Path) -> Path:
    """ONNX Runtime's basic optimisations (constant folding, Identity removal), MatMul + Add
    kept apart (a Gemm would hide the MatMul from the quantiser)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    onnxruntime.InferenceSession(
        str(float_model),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["MatMulAddFusion"],
    )
    return out


def quantizable_convs(model_path: Path) -> list[str]:
    """The 2-D Conv nodes with constant weights, but the first layers: those whose input comes
    from the graph's inputs through no weighted layer (a stem or patch embedding, which the
    whole network amplifies; often after normalisation in the graph)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    weighted_ops = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    after_weights: set[str] = set()  # tensors computed through at least one weighted layer
    chosen = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type in weighted_ops or after_weights.intersection(node.input):
            after_weights.update(node.output)
        if (
            node.op_type == "Conv"
            and node.input[0] in after_weights
            and node.input[1] in constants
            and len(constants[node.input[1]].dims) == 4
        ):
            chosen.append(node.name)
    return chosen


def softmax_products(model_path: Path) -> list[str]:
    """The MatMuls that read a Softmax's output (attention probabilities × values): a power-law
    distribution that one uint8 scale per tensor serves worst."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    softmax_outputs = {node.output[0] for node in graph.node if node.op_type == "Softmax"}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and softmax_outputs.intersection(node.input)
    ]


def equalise_norm_outputs(model_path: Path, feeds: list[Feeds], out: Path) -> int:
    """Per-channel smoothing of LayerNorm outputs that feed only MatMuls with constant weights
    (SmoothQuant, α = 0.5; RepQ-ViT's post-LayerNorm reparameterisation): channel k of the
    norm's scale and bias is divided by s_k and row k of each weight multiplied by it, with
    s_k = sqrt(max|x_k| / max|w_k|) over ``feeds``. Exact in float; it tames the few
    outlier channels of real ViTs (DINOv2) that would otherwise set the one activation scale
    of every int8 MatMul behind the norm. Returns how many norms were equalised."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {tensor.name for tensor in graph.output}
    norms = {}
    for node in graph.node:
        if node.op_type != "LayerNormalization" or node.output[0] in outputs:
            continue
        consumers = readers.get(node.output[0], [])
        affine = [name for name in node.input[1:3] if name]
        if (
            consumers
            and all(name in constants and len(constants[name].dims) == 1 for name in affine)
            and all(
                user.op_type == "MatMul"
                and user.input[0] == node.output[0]
                and user.input[1] in constants
                and list(constants[user.input[1]].dims[:1]) == list(constants[affine[0]].dims)
                and len(constants[user.input[1]].dims) == 2
                for user in consumers
            )
        ):
            norms[node.output[0]] = (node, consumers)
    if not norms:
        return 0
    peaks = _channel_peaks(model, list(norms), feeds)
    for tensor_name, (node, consumers) in norms.items():
        weights = [numpy_helper.to_array(constants[user.input[1]]) for user in consumers]
        weight_peak = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        scale = (peaks[tensor_name] ** ALPHA) / np.maximum(weight_peak, 1e-12) ** (1 - ALPHA)
        scale = np.where((peaks[tensor_name] > 0) & (weight_peak > 0), scale, 1.0)
        scale = np.clip(scale, 1e-4, 1e4).astype(np.float32)
        for index, name in enumerate(node.input[1:3], start=1):
            if name:
                node.input[index] = _add_constant(
                    graph,
                    f"{name}.equalised.{node.name}",
                    numpy_helper.to_array(constants[name]) / scale,
                )
        for user, weight in zip(consumers, weights, strict=True):
            user.input[1] = _add_constant(
                graph, f"{user.input[1]}.equalised.{user.name}", weight * scale[:, None]
            )
    used = {name for node in graph.node for name in node.input}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    onnx.save(model, str(out))
    return len(norms)


def _channel_peaks(model, tensor_names: list[str], feeds: list[Feeds]) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each named tensor over ``feeds``."""
    import onnx
    import onnxruntime

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in tensor_names
    )
    session = onnxruntime.InferenceSession(
        probe.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    peaks: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(tensor_names, session.run(tensor_names, feed), strict=True):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            peaks[name] = peak if name not in peaks else np.maximum(peaks[name], peak)
    return peaks


def _add_constant(graph, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    return name


class _Frames:
    """ONNX Runtime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[Feeds]) -> None:
        self._feeds = feeds
        self._remaining = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._remaining, None)

    def rewind(self) -> None:
        self._remaining = iter(self._feeds)


def _static_convs(source: Path, convs: list[str], feeds: list[Feeds], out: Path) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        source,
        out,
        _Frames(feeds),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        nodes_to_quantize=convs,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return out


def _dynamic_matmuls(source: Path, out: Path, float_nodes: list[str] | None = None) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        out,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=float_nodes or [],
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={
            # The attention products too (both inputs computed): faster at every size measured.
            "MatMulConstBOnly": False,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )
    return out


def _depths(graph: Path, feeds: list[Feeds], calibration: Calibration) -> list[np.ndarray]:
    session = cpu_session(graph)
    names = [output.name for output in session.get_outputs()]
    return [
        calibration.depth(dict(zip(names, session.run(None, feed), strict=True))) for feed in feeds
    ]


@contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """The quantiser gives advice on the root logger (pre-processing): not for the user. It also
    calls logging.basicConfig, whose root handler would print every later line of ours twice."""
    root = logging.getLogger()
    previous_level, previous_handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous_level)
        for handler in [h for h in root.handlers if h not in previous_handlers]:
            root.removeHandler(handler)
