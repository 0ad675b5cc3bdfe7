"""How close a depth map from a compiled, quantised or on-device graph is to the float
reference: the numbers ``precision: int8`` checks and ``edgedepth deploy`` reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
