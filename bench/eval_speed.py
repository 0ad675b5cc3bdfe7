"""How long the LPCVC metrics take for one 480×640 frame (the claim: well under a second),
median of a few runs after a warm-up (scipy import, KD-tree code paths).

    python bench/eval_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgedepth.evaluation.metrics import evaluate_image
from edgedepth.media.synthetic_scene import SyntheticScene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _, depth = SyntheticScene(width=640, height=480).render(0)
    noise = np.random.default_rng(0).normal(1.0, 0.05, depth.shape).astype(np.float32)
    conf = np.full(depth.shape, 2, dtype=np.uint8)
    evaluate_image(depth * noise, depth, conf)  # warm-up
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        metrics = evaluate_image(depth * noise, depth, conf).metrics
        seconds.append(time.perf_counter() - start)
    print(
        f"eval of one 480x640 frame: median {1000 * statistics.median(seconds):.0f} ms "
        f"(min {1000 * min(seconds):.0f}, max {1000 * max(seconds):.0f}) over {args.repeat} "
        f"runs; F-score {metrics['fscore']:.2f}"
    )


if __name__ == "__main__":
    main()
