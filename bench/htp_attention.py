"""Fused vs per-head attention for the HTP: both forms compiled by QNN (onnxruntime-qnn) for a
Snapdragon X Elite, on this machine's HTP emulator; ONNX op counts, graph and context-binary
sizes, QNN's own op count, compile time, and one frame on the emulator against the CPU.

    python bench/htp_attention.py            # the tiny test-sized ViT, then ViT-S at 350²
    python bench/htp_attention.py --no-vits  # the tiny one only

The emulator runs the HTP's arithmetic on the x86 CPU: its times say nothing about the NPU. The
on-device latency needs Qualcomm AI Hub; the script ends with the two ``edgedepth deploy compile
--aihub`` commands that profile both forms for a user with a token.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from edgedepth.models.dav2.checkpoint import random_model
from edgedepth.models.dav2.export import DepthGraph, export_onnx
from edgedepth.models.dav2.graph import GraphOptions
from edgedepth.models.dav2.network import DAv2Config, config_for
from edgedepth.runtime.options import DEFAULT_PRESET, QnnOptions
from edgedepth.runtime.sessions import cpu_session, qnn_session

#: A 4-block ViT (the tests' size): compiles and runs on the emulator in seconds.
TINY = DAv2Config(64, 4, 2, 32, (16, 32, 64, 64), (0, 1, 2, 3), pos_grid=9, encoder="tiny")


def qnn_op_count(folder: Path) -> int | None:
    """Nodes in the QNN graph the EP built (its JSON dump), or None if it wrote none."""
    counts = []
    for dump in folder.glob("**/*.json"):
        try:
            graph = json.loads(dump.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        nodes = graph.get("graph", {}).get("nodes") if isinstance(graph, dict) else None
        if isinstance(nodes, dict | list):
            counts.append(len(nodes))
    return sum(counts) if counts else None


def compile_form(
    config: DAv2Config, size: tuple[int, int], attention: str, work: Path, run: bool
) -> dict:
    folder = work / f"{config.encoder}-{attention}"
    folder.mkdir()
    graph = DepthGraph(random_model(config), GraphOptions(attention=attention), size)  # type: ignore[arg-type]
    export_onnx(graph, folder / "model.onnx")
    ops = Counter(node.op_type for node in onnx.load(folder / "model.onnx").graph.node)
    qnn = QnnOptions(
        device=DEFAULT_PRESET,
        provider_options={"dump_json_qnn_graph": "1", "json_qnn_graph_dir": str(folder / "json")},
    )
    started = time.perf_counter()
    session = qnn_session(folder / "model.onnx", qnn, folder / "model_ctx.onnx")
    compile_seconds = time.perf_counter() - started
    (binary,) = folder.glob("model_ctx*.bin")
    row = {
        "form": attention,
        "onnx_nodes": sum(ops.values()),
        "matmul": ops["MatMul"] + ops["Gemm"],
        "softmax": ops["Softmax"],
        "onnx_mb": (folder / "model.onnx").stat().st_size / 1e6,
        "qnn_nodes": qnn_op_count(folder / "json"),
        "binary_mb": binary.stat().st_size / 1e6,
        "compile_s": compile_seconds,
    }
    if run:
        image = np.random.default_rng(0).random((1, 3, *size), np.float32) * 255
        started = time.perf_counter()
        (htp,) = session.run(None, {"image": image})
        row["emulated_run_s"] = time.perf_counter() - started
        (cpu,) = cpu_session(folder / "model.onnx").run(None, {"image": image})
        row["rel_error_vs_cpu"] = float(np.abs(htp - cpu).mean() / np.abs(cpu).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-vits", action="store_true", help="only the tiny ViT")
    parser.add_argument(
        "--no-vits-run", action="store_true", help="compile ViT-S but skip its emulated frame"
    )
    args = parser.parse_args()
    print(
        f"# {platform.machine()} {platform.system()}, QNN HTP emulator, target {DEFAULT_PRESET}, "
        "fp16; random weights"
    )
    models = [("tiny ViT (4 blocks, 2 heads), 126²", TINY, (126, 126), True)]
    if not args.no_vits:
        models.append(("ViT-S, 350²", config_for("vits"), (350, 350), not args.no_vits_run))
    with tempfile.TemporaryDirectory() as tmp:
        for title, config, size, run in models:
            print(f"\n{title}")
            print(
                f"  {'form':9} {'ONNX nodes':>10} {'MatMul+Gemm':>11} {'Softmax':>7} "
                f"{'ONNX MB':>8} {'QNN nodes':>9} {'binary MB':>9} {'compile s':>9} "
                f"{'emulated s':>10} {'rel. err vs CPU':>15}"
            )
            for attention in ("fused", "per-head"):
                row = compile_form(config, size, attention, Path(tmp), run)
                emulated = f"{row['emulated_run_s']:.1f}" if "emulated_run_s" in row else "-"
                error = f"{row['rel_error_vs_cpu']:.2e}" if "rel_error_vs_cpu" in row else "-"
                print(
                    f"  {row['form']:9} {row['onnx_nodes']:>10} {row['matmul']:>11} "
                    f"{row['softmax']:>7} {row['onnx_mb']:>8.1f} {row['qnn_nodes'] or '-':>9} "
                    f"{row['binary_mb']:>9.1f} {row['compile_s']:>9.1f} {emulated:>10} "
                    f"{error:>15}",
                    flush=True,
                )
    print("\nOn-device latency (needs an AI Hub token; profiles 20 iterations on the device):")
    # The laptops edgedepth runs on, and the LPCVC 2025 timing device (Snapdragon 8 Gen 3).
    for device, slug in (
        ("Snapdragon X Elite CRD", "x-elite"),
        ("Samsung Galaxy S24 (Family)", "s24"),
    ):
        for attention in ("fused", "per-head"):
            print(
                "  edgedepth deploy compile --config configs/lpcvc-relative.yaml --aihub "
                f'--device "{device}" --input-size 480x640 '
                f"--set backend.graph.attention={attention} --out htp-{slug}-{attention}"
            )


if __name__ == "__main__":
    main()
