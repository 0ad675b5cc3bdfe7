"""int8 on the CPU: frame rate and error of ``backend.precision: int8`` against float32 on
onnx-cpu, ViT-S at 350² and at 518 keep-aspect (518×686, a 640×480 frame). Goal: ≥ 2× float.

    python bench/int8.py --photos DIR [--rounds 7] [--sizes 350x350 518x686]

Variants, each a session on the exported graph (2 threads, edgedepth's CPU session settings):

- ``float32``: the export;
- ``int8 dynamic``: what ``precision: int8`` runs (:mod:`edgedepth.runtime.int8`: every MatMul);
- ``int8 dynamic, const B``: the linears only (ONNX Runtime's default for dynamic MatMul);
- ``int8 static QDQ``: MatMul + Conv, per-channel int8 weights, uint8 activations, calibrated
  on 8 frames of the synthetic scene.

Speed: the variants run in turn (A B C D A B C D …, ``--rounds`` times) on one input, so they see
the same load; the median and the spread are printed. Error: each photo of ``DIR`` (the official
repository's ``assets/examples``) resized to the network size, variant vs float32: relative error
(mean |Δ| / mean |float|) and δ1 agreement (share of pixels within a factor 1.25). The weights are
random (no checkpoint can be downloaded here): the errors are only indicative of trained weights.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgedepth.api.stages import BuildContext
from edgedepth.engine.registry import load_registry
from edgedepth.media.imageops import resize
from edgedepth.media.synthetic_scene import SyntheticScene
from edgedepth.runtime.exports import export_folder
from edgedepth.runtime.int8 import int8_model
from edgedepth.runtime.sessions import cpu_session

CACHE = Path(tempfile.gettempdir()) / "edgedepth-bench-cache"


def exported_graph(size: tuple[int, int]) -> Path:
    """The float32 export of ViT-S (random weights) for ``size``, through the backend."""
    backend = load_registry().build(
        "backends",
        "dav2-relative",
        {"random_weights": True, "encoder": "vits", "runtime": "onnx-cpu"},
        BuildContext(None, "file", CACHE, input_size=size),
    )
    folder = export_folder(backend.model.graph_key(htp=False), size, CACHE)
    return folder / "model.onnx"


def static_qdq(float_model: Path, size: tuple[int, int]) -> Path:
    """MatMul + Conv in QDQ form, calibrated on synthetic frames (kept beside the export)."""
    target = float_model.with_name("model.static-qdq.onnx")
    if target.exists():
        return target
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    scene = SyntheticScene(seed=1, width=640, height=480, motion="orbit")
    frames = [
        resize(scene.render(i * 20)[0].astype(np.float32), size, "bicubic")
        .transpose(2, 0, 1)[None]
        .copy()
        for i in range(8)
    ]

    class Frames:
        def __init__(self) -> None:
            self.remaining = iter(frames)

        def get_next(self) -> dict | None:
            tensor = next(self.remaining, None)
            return None if tensor is None else {"image": tensor}

    quantize_static(
        float_model,
        target,
        Frames(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return target


def dynamic_const_b(float_model: Path) -> Path:
    target = float_model.with_name("model.dynamic-const-b.onnx")
    if not target.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            float_model, target, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
        )
    return target


def compare(depth: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(relative error, δ1 agreement) of ``depth`` against ``reference``."""
    relative = float(np.abs(depth - reference).mean() / np.abs(reference).mean())
    floor = 1e-6 * float(np.abs(reference).max())
    a, b = np.maximum(depth, floor), np.maximum(reference, floor)
    return relative, float((np.maximum(a / b, b / a) < 1.25).mean())


def bench_size(size: tuple[int, int], photos: list[Path], rounds: int) -> None:
    float_model = exported_graph(size)
    variants = {
        "float32": float_model,
        "int8 dynamic (shipped)": int8_model(float_model, float_model.parent),
        "int8 dynamic, const B": dynamic_const_b(float_model),
        "int8 static QDQ": static_qdq(float_model, size),
    }
    sessions = {name: cpu_session(path) for name, path in variants.items()}
    inputs = [
        resize(np.asarray(Image.open(p).convert("RGB"), np.float32), size, "bicubic")
        .transpose(2, 0, 1)[None]
        .copy()
        for p in photos
    ]
    errors: dict[str, list[tuple[float, float]]] = {name: [] for name in sessions}
    for tensor in inputs:
        outputs = {name: s.run(None, {"image": tensor})[0] for name, s in sessions.items()}
        for name, depth in outputs.items():
            errors[name].append(compare(depth, outputs["float32"]))
    timings: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        session.run(None, {"image": inputs[0]})  # warm-up
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, {"image": inputs[0]})
            timings[name].append(time.perf_counter() - started)
    base = statistics.median(timings["float32"])
    print(f"\n{size[0]}×{size[1]} ({len(photos)} photos for the error, {rounds} rounds):")
    print(
        f"  {'variant':24} {'ms/frame':>9} {'spread':>11} {'FPS':>6} {'× float':>8} "
        f"{'rel. error':>10} {'δ1':>7}"
    )
    for name, times in timings.items():
        median = statistics.median(times)
        relative = statistics.mean(e[0] for e in errors[name])
        delta1 = statistics.mean(e[1] for e in errors[name])
        print(
            f"  {name:24} {median * 1000:9.0f} {min(times) * 1000:5.0f}–{max(times) * 1000:<5.0f} "
            f"{1 / median:6.2f} {base / median:7.2f}× {relative:10.4f} {delta1:7.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos (JPEG/PNG)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", default=["350x350", "518x686"])
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not photos:
        raise SystemExit(f"{args.photos}: no .jpg or .png photos")
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice on the root logger
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; ViT-S random weights (errors only indicative); "
        f"onnx-cpu, {os.cpu_count()} threads; goal int8 ≥ 2× float32"
    )
    for size in args.sizes:
        height, width = (int(side) for side in size.split("x"))
        bench_size((height, width), photos, args.rounds)


if __name__ == "__main__":
    main()
