"""int8 on the CPU: frame rate, op profile and error of ``backend.precision: int8`` against
float32 on onnx-cpu, ViT-S at 350² and at 518 keep-aspect (518×686, a 640×480 frame).
Goal: ≥ 2× float at 350², ≥ 1.8× at 518×686, δ1 ≥ 0.99 against float.

    python bench/int8.py --photos DIR [--rounds 9] [--sizes 350x350 518x686] [--rejected]

Variants, each a session on the exported graph (edgedepth's CPU session settings, one thread
per core):

- ``float32``: the export;
- ``int8 (shipped)``: what ``precision: int8`` makes through the backend
  (:mod:`edgedepth.runtime.int8`: the check against float decides which candidate is kept);
- ``int8 MatMul+Conv``: the first candidate kept whatever the check says (int8 convolutions
  too: what the check refuses on random weights);
- ``int8 before``: the previous scheme (every MatMul dynamic, int8 weights per tensor);
- with ``--rejected``, ``int8 static QDQ MatMul``: the linears and attention products static
  (calibrated QDQ, per-channel weights), the form that did not pay.

Speed: the variants run in turn (A B C D A B C D …, ``--rounds`` times) on one input, so they see
the same load; medians and the spread. Op profile: ONNX Runtime's profile
(``SessionOptions.enable_profiling``) of 3 more interleaved runs per variant, node time summed
by kind (ms per run). Error: each photo of ``DIR`` (the official repository's
``assets/examples``) resized to the network size, variant vs float32 as the check measures it
(:func:`edgedepth.runtime.accuracy.compare_depth`: relative L2 error, δ1 agreement). The
weights are random (no checkpoint can be downloaded here) and lack real DINOv2's outlier
activations: the errors say how int8 treats this network, not a trained one.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from edgedepth.api.stages import BuildContext
from edgedepth.engine.registry import load_registry
from edgedepth.media.imageops import resize
from edgedepth.media.synthetic_scene import sample_images
from edgedepth.runtime import int8
from edgedepth.runtime.accuracy import compare_depth
from edgedepth.runtime.exports import export_folder
from edgedepth.runtime.sessions import cpu_session

CACHE = Path(tempfile.gettempdir()) / "edgedepth-bench-cache"
#: A bound every candidate keeps: the first candidate (MatMul + Conv) is kept.
NO_BOUND = {"delta1_agreement": 0.0, "relative_error": float("inf")}
#: How the profile's node kinds are summed.
KINDS = {
    "MatMul work": {"Gemm", "MatMul", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulInteger",
                    "MatMulIntegerToFloat", "QLinearMatMul", "QGemm", "DynamicQuantizeLinear"},
    "Conv work": {"Conv", "FusedConv", "QLinearConv", "NhwcQLinearConv", "ConvTranspose"},
    "Softmax": {"Softmax", "QLinearSoftmax"},
    "LayerNorm": {"LayerNormalization", "SkipLayerNormalization"},
    "Q/DQ": {"QuantizeLinear", "DequantizeLinear"},
}  # fmt: skip


def float_graph(size: tuple[int, int]) -> tuple[Path, int8.Calibration]:
    """The float32 export of ViT-S (random weights) at ``size``, made through the backend, and
    the calibration the backend gives int8 for it."""
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        {"random_weights": True, "encoder": "vits", "runtime": "onnx-cpu", "precision": "int8"},
        BuildContext(None, "file", CACHE, input_size=size),
    )
    graph = export_folder(backend.model.graph_key(htp=False), size, CACHE) / "model.onnx"
    return graph, backend.calibration(size, graph, backend.signature.manifest)


def backend_graphs(size: tuple[int, int]) -> dict[str, Path]:
    """float32 export, the shipped int8 graph and the MatMul + Conv candidate, made through the
    backend (ViT-S, random weights)."""
    graph, calibration = float_graph(size)
    return {
        "float32": graph,
        "int8 (shipped)": int8.int8_model(graph, graph.parent, calibration),
        "int8 MatMul+Conv": int8.int8_model(graph, graph.parent, calibration, NO_BOUND),
        "int8 before": dynamic_per_tensor(graph),
    }


def dynamic_per_tensor(float_model: Path) -> Path:
    """The previous scheme: every MatMul dynamic, int8 weights per tensor."""
    target = float_model.with_name("model.before.onnx")
    if not target.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            float_model,
            target,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": False},
        )
    return target


def static_matmuls(float_model: Path, size: tuple[int, int]) -> Path:
    """Every MatMul static QDQ (per-channel weights, calibrated on the synthetic scene)."""
    target = float_model.with_name("model.static-matmul.onnx")
    if target.exists():
        return target
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as work:
        prepared = int8.prepare(float_model, Path(work) / "prepared.onnx")
        tensors = [image.transpose(2, 0, 1)[None].copy() for image in sample_images(*size, 8)]
        quantize_static(
            prepared,
            target,
            int8._Frames([{"image": tensor} for tensor in tensors]),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return target


def profiled(path: Path, prefix: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_mem_pattern = False
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def op_profile(profile_file: str) -> dict[str, float]:
    """ms per run by kind of node, from ONNX Runtime's profile (the first run left out)."""
    events = json.loads(Path(profile_file).read_text())
    Path(profile_file).unlink()
    runs = [event for event in events if event.get("name") == "model_run"]
    first_end = runs[0]["ts"] + runs[0]["dur"]
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        node = event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
        if node and event["ts"] > first_end:
            op = event["args"]["op_name"]
            kind = next((k for k, ops in KINDS.items() if op in ops), "other")
            totals[kind] += event["dur"]
    return {kind: totals[kind] / (len(runs) - 1) / 1000 for kind in [*KINDS, "other"]}


def bench_size(size: tuple[int, int], photos: list[Path], rounds: int, rejected: bool) -> None:
    variants = backend_graphs(size)
    if rejected:
        variants["int8 static QDQ MatMul"] = static_matmuls(variants["float32"], size)
    shipped = int8.int8_report(variants["int8 (shipped)"])
    sessions = {name: cpu_session(path) for name, path in variants.items()}
    inputs = [
        resize(np.asarray(Image.open(p).convert("RGB"), np.float32), size, "bicubic")
        .transpose(2, 0, 1)[None]
        .copy()
        for p in photos
    ]
    outputs = {name: [s.run(None, {"image": x})[0] for x in inputs] for name, s in sessions.items()}
    errors = {name: compare_depth(depth, outputs["float32"]) for name, depth in outputs.items()}
    feed = {"image": inputs[0]}
    timings: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        session.run(None, feed)  # warm-up
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feed)
            timings[name].append(time.perf_counter() - started)
    work = Path(tempfile.mkdtemp())
    profiles = {name: profiled(path, str(work / f"p{i}")) for i, (name, path) in
                enumerate(variants.items())}  # fmt: skip
    for _ in range(4):
        for session in profiles.values():
            session.run(None, feed)
    kinds = {name: op_profile(session.end_profiling()) for name, session in profiles.items()}
    base = statistics.median(timings["float32"])
    print(f"\n{size[0]}×{size[1]} ({len(photos)} photos for the error, {rounds} rounds, load "
          f"{os.getloadavg()[0]:.1f}); shipped int8 kept: {shipped['int8']}")  # fmt: skip
    print(f"  {'variant':24} {'ms/frame':>9} {'spread':>11} {'× float':>8} {'rel. error':>10} "
          f"{'δ1':>7}")  # fmt: skip
    for name, times in timings.items():
        median = statistics.median(times)
        print(
            f"  {name:24} {median * 1000:9.0f} {min(times) * 1000:5.0f}–{max(times) * 1000:<5.0f} "
            f"{base / median:7.2f}× {errors[name]['relative_error']:10.4f} "
            f"{errors[name]['delta1_agreement']:7.4f}"
        )
    print("  op profile, ms per run (3 runs each, interleaved):")
    print(f"  {'kind':14}" + "".join(f"{name[:22]:>24}" for name in kinds))
    for kind in [*KINDS, "other"]:
        print(f"  {kind:14}" + "".join(f"{kinds[name][kind]:24.1f}" for name in kinds))
    total = {name: sum(values.values()) for name, values in kinds.items()}
    print(f"  {'sum':14}" + "".join(f"{total[name]:24.1f}" for name in kinds))
    print("  the check on synthetic frames when the shipped graph was made:")
    for name, numbers in shipped["candidates"].items():
        print(f"    {name:24} δ1 {numbers['delta1_agreement']:.4f}, relative error "
              f"{numbers['relative_error']:.4f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos (JPEG/PNG)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sizes", nargs="+", default=["350x350", "518x686"])
    parser.add_argument("--rejected", action="store_true", help="also static QDQ MatMuls")
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not photos:
        raise SystemExit(f"{args.photos}: no .jpg or .png photos")
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice on the root logger
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}; ViT-S random weights "
        f"(errors only indicative); onnx-cpu, {os.cpu_count()} threads; goal int8 ≥ 2× float32 "
        "at 350², ≥ 1.8× at 518×686, δ1 ≥ 0.99"
    )
    for size in args.sizes:
        height, width = (int(side) for side in size.split("x"))
        bench_size((height, width), photos, args.rounds, args.rejected)


if __name__ == "__main__":
    main()
