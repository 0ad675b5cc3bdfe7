"""Writes tests/data/dav2_official_golden.json: what the official DepthAnythingV2 code computes
for a seeded ViT-S, relative and metric, the numbers tests/test_official_dav2.py holds edgedepth
against. The tests never run this; run it again only to regenerate the file:

    git clone https://github.com/DepthAnything/Depth-Anything-V2 CHECKOUT
    python tests/tools/official_dav2_golden.py CHECKOUT [--out FILE]

The official code is imported from CHECKOUT (its ``depth_anything_v2`` package for the relative
model, ``metric_depth/depth_anything_v2`` for the metric one) by bench/official_parity.py's
``official_model``, never copied here. It needs torch, numpy and OpenCV (the official
preprocessing resizes with cv2); torchvision only for ``Compose``, which stands in for it where
no torchvision matches the installed torch.

The weights are not stored: ``tests.dav2_fixtures.seeded_state_dict`` makes them from the seed
and the parameter names, so the file holds numbers only (inputs' seeds, outputs sampled on a
grid, and each output's mean, standard deviation and maximum over every pixel). Random weights
lack real DINOv2's outlier activations: this is about computing the same function, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
from bench.official_parity import VITS, official_model  # noqa: E402
from tests.dav2_fixtures import seeded_network_input, seeded_photo, seeded_state_dict  # noqa: E402

OUT = REPO / "tests" / "data" / "dav2_official_golden.json"
WEIGHTS_SEED = 2024
#: A non-square input (patch grid 9×13): the position embedding is interpolated from 37×37.
NETWORK_INPUT = {"seed": 11, "shape": [1, 3, 126, 182]}
#: infer_image on a 90×160 BGR picture at input_size 126: keep-aspect to 126×224 and back.
PHOTO = {"seed": 12, "height": 90, "width": 160, "input_size": 126}
#: Sampled pixels: rows ROW0, ROW0 + ROW_STEP, …; columns likewise.
ROW0, ROW_STEP, COL0, COL_STEP = 2, 5, 3, 7


def sampled(depth: np.ndarray) -> dict:
    """The numbers kept of one H×W output."""
    depth = depth.astype(np.float64)
    grid = depth[ROW0::ROW_STEP, COL0::COL_STEP]
    return {
        "shape": list(depth.shape),
        "values": [[float(f"{v:.8g}") for v in row] for row in grid],
        "mean": float(depth.mean()),
        "std": float(depth.std()),
        "max": float(np.abs(depth).max()),
    }


def seeded_official_model(checkout: Path, kind: str) -> torch.nn.Module:
    """The official class of this kind with the seeded weights (loaded strictly)."""
    model = official_model(checkout, kind)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    model.load_state_dict(seeded_state_dict(shapes, WEIGHTS_SEED, kind), strict=True)
    return model.eval()


def golden(checkout: Path) -> dict:
    cases = {}
    for kind in ("relative", "metric"):
        model = seeded_official_model(checkout, kind)
        network_input = seeded_network_input(NETWORK_INPUT["seed"], NETWORK_INPUT["shape"])
        with torch.no_grad():
            depth = model(torch.from_numpy(network_input))[0].numpy()
        case = {"network": {"input": NETWORK_INPUT, "depth": sampled(depth)}}
        if kind == "relative":
            bgr = seeded_photo(PHOTO["seed"], PHOTO["height"], PHOTO["width"])
            depth = model.infer_image(bgr, PHOTO["input_size"])
            case["infer_image"] = {"photo": PHOTO, "depth": sampled(depth)}
        cases[kind] = {"max_depth": 20.0 if kind == "metric" else None, **case}
    return {
        "generated_by": "tests/tools/official_dav2_golden.py",
        "official": {"repository": "DepthAnything/Depth-Anything-V2", "commit": commit(checkout)},
        "torch": torch.__version__,
        "model": VITS,
        "weights": {"seed": WEIGHTS_SEED, "made_by": "tests.dav2_fixtures.seeded_state_dict"},
        "photo_channels": "BGR to infer_image (as cv2.imread gives); RGB to edgedepth",
        "sample": {"row0": ROW0, "row_step": ROW_STEP, "col0": COL0, "col_step": COL_STEP},
        "cases": cases,
    }


def commit(checkout: Path) -> str:
    found = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return found.stdout.strip() if found.returncode == 0 else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of DepthAnything/Depth-Anything-V2")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git work tree")
    args = parser.parse_args()
    data = golden(args.checkout.resolve())
    if args.commit:
        data["official"]["commit"] = args.commit
    text = json.dumps(data, indent=1)
    # One line per row of numbers: a readable file of about 20 KB.
    text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: f"[{' '.join(m[1].split())}]", text)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
