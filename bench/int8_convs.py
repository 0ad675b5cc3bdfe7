"""Which convolutions int8 can take and keep the accuracy bound: ViT-S (random weights) at 350²,
every MatMul dynamic int8 as ``precision: int8`` makes it, then the DPT head's convolutions
static int8 (calibrated, per-channel weights), all of them or all but named groups.

    python bench/int8_convs.py [GROUP,GROUP ...]   # e.g. output_conv output_conv,refinenet1

Each line: how many convolutions are int8, δ1 agreement and relative error against float32 on
the check frames (what the backend's check measures), and the speed against float32 (median of
7 rounds, the graphs run in turn in each round). Random weights lack real DINOv2's outlier
activations: the errors say how int8 treats this network, not a trained one.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from int8 import CACHE, float_graph  # bench/int8.py: its cache of exports, its export

from edgedepth.runtime import int8
from edgedepth.runtime.accuracy import compare_depth
from edgedepth.runtime.sessions import cpu_session

SIZE = (350, 350)


def seconds_per_run(graphs: dict[str, Path], feeds: dict, rounds: int = 7) -> dict[str, float]:
    """Median seconds per run of each graph, the graphs run in turn in every round (A B C A B C
    …) so that they see the same load."""
    sessions = {name: cpu_session(graph) for name, graph in graphs.items()}
    for session in sessions.values():
        session.run(None, feeds)
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feeds)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    graph, calibration = float_graph(SIZE)
    work = CACHE / "int8-convs"
    work.mkdir(parents=True, exist_ok=True)
    prepared = int8.prepare(graph, work / "prepared.onnx")
    convs = int8.quantizable_convs(prepared)
    feeds = calibration.feeds(int8.CALIBRATION_FRAMES + int8.CHECK_FRAMES)
    calibrate, check = feeds[: int8.CALIBRATION_FRAMES], feeds[int8.CALIBRATION_FRAMES :]
    reference = int8._depths(graph, check, calibration)
    int8.equalise_norm_outputs(prepared, calibrate, prepared)
    print(f"# ViT-S random weights, {SIZE[0]}×{SIZE[1]}; {len(convs)} convolutions int8-able")
    trials = {"MatMul only": [], "MatMul + every conv": convs}
    for groups in sys.argv[1:]:
        kept_float = {c for c in convs if any(group in c for group in groups.split(","))}
        trials[f"MatMul + convs but {groups}"] = [c for c in convs if c not in kept_float]
    graphs, errors = {"float32": graph}, {}
    for name, subset in trials.items():
        tag = f"{len(subset)}"
        source = int8._static_convs(prepared, subset, calibrate, work / f"conv{tag}.onnx")
        graphs[name] = int8._dynamic_matmuls(source if subset else prepared, work / f"{tag}.onnx")
        errors[name] = compare_depth(int8._depths(graphs[name], check, calibration), reference)
    seconds = seconds_per_run(graphs, check[0])
    for name, subset in trials.items():
        numbers = errors[name]
        print(
            f"{name:50} convs int8 {len(subset):2}  δ1 {numbers['delta1_agreement']:.4f}  "
            f"rel. error {numbers['relative_error']:.4f}  "
            f"{seconds['float32'] / seconds[name]:.2f}× float"
        )


if __name__ == "__main__":
    main()
