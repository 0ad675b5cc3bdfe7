"""How close a depth map from a compiled, quantised or on-device graph is to the float
reference: the numbers ``precision: int8`` checks and ``edgedepth deploy`` reports.

As a command, two folders of depth maps (``.npy``, e.g. from the npy sink) compared by name::

    python -m edgedepth.runtime.accuracy FLOAT_DIR OTHER_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgedepth.api.errors import EdgedepthError


def compare_depth(
    candidate: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> dict[str, float]:
    """Relative L2 error, max abs error and δ1 agreement (fraction of pixels where
    max(a/b, b/a) < 1.25) of ``candidate`` against ``reference``, over all frames."""
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} outputs against {len(reference)} references")
    got = np.concatenate([np.asarray(a, np.float64).ravel() for a in candidate])
    want = np.concatenate([np.asarray(b, np.float64).ravel() for b in reference])
    if got.shape != want.shape:
        raise ValueError(f"output sizes differ: {got.shape} vs {want.shape}")
    eps = 1e-6
    ratio = np.maximum((got + eps) / (want + eps), (want + eps) / (got + eps))
    both_positive = (got > 0) & (want > 0)
    return {
        "frames": len(candidate),
        "relative_error": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12)),
        "max_abs_error": float(np.abs(got - want).max()),
        "delta1_agreement": float(np.mean((ratio < 1.25) & both_positive | (got == want))),
    }


def format_comparison(label: str, numbers: dict[str, float]) -> str:
    return (
        f"{label}: relative error {numbers['relative_error']:.3e}, max abs error "
        f"{numbers['max_abs_error']:.3e}, δ1 agreement {100 * numbers['delta1_agreement']:.2f}% "
        f"over {numbers['frames']} frames"
    )


def compare_folders(reference: Path, candidate: Path) -> dict[str, float]:
    """:func:`compare_depth` over the ``.npy`` files of ``reference`` and their namesakes in
    ``candidate``."""
    names = sorted(path.name for path in reference.glob("*.npy"))
    if not names:
        raise EdgedepthError(f"{reference}: no .npy files")
    missing = [name for name in names if not (candidate / name).is_file()]
    if missing:
        raise EdgedepthError(f"{candidate}: no {missing[0]} (of {len(names)} in {reference})")
    return compare_depth(
        [np.load(candidate / name) for name in names], [np.load(reference / name) for name in names]
    )


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m edgedepth.runtime.accuracy FLOAT_DIR OTHER_DIR")
    reference, candidate = (Path(arg) for arg in argv)
    try:
        numbers = compare_folders(reference, candidate)
    except EdgedepthError as error:
        raise SystemExit(f"error: {error}") from None
    print(format_comparison(f"{candidate} vs {reference}", numbers))


if __name__ == "__main__":
    main(sys.argv[1:])
