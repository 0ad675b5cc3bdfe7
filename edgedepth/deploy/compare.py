"""How close a compiled / quantised / on-device model is to the float reference."""

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


def format_comparison(label: str, numbers: dict[str, float]) -> str:
    return (
        f"{label}: relative error {numbers['relative_error']:.3e}, max abs error "
        f"{numbers['max_abs_error']:.3e}, δ1 agreement {100 * numbers['delta1_agreement']:.2f}% "
        f"over {numbers['frames']} frames"
    )
