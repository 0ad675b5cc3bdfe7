"""How close a compiled / quantised / on-device model is to the float reference."""

from __future__ import annotations


def format_comparison(label: str, numbers: dict[str, float]) -> str:
    return (
        f"{label}: relative error {numbers['relative_error']:.3e}, max abs error "
        f"{numbers['max_abs_error']:.3e}, δ1 agreement {100 * numbers['delta1_agreement']:.2f}% "
        f"over {numbers['frames']} frames"
    )
