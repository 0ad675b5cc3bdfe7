"""A complete edgedepth backend plugin for transformers' DPT (``DPTForDepthEstimation``, the
MiDaS-style relative inverse depth of Intel/dpt-large, dpt-hybrid-midas, …) exported to ONNX.

Only what is DPT's own is here: its preprocessing (RGB / 255, mean 0.5, std 0.5, as DPT's image
processor does), its output, and what that output means. Everything else comes from edgedepth's
generic ONNX backend: ``runtime: auto | onnx-cpu | qnn`` (the Snapdragon NPU, its context binary
compiled once per input size and cached), ``precision: int8`` on the CPU, ``max_shapes``,
``threads``, ``qnn: {...}``, Ctrl-C, ``edgedepth check``, and ``edgedepth deploy export |
quantize | compile --local | --aihub``, whose output folder runs here as ``model: FOLDER``.

Export the model once (``pixel_values`` 1×3×H×W → ``predicted_depth`` 1×H×W)::

    model = DPTForDepthEstimation.from_pretrained("Intel/dpt-large").eval()
    torch.onnx.export(model, (torch.zeros(1, 3, 384, 384),), "dpt-large.onnx",
                      input_names=["pixel_values"], output_names=["predicted_depth"],
                      dynamic_axes={"pixel_values": {2: "height", 3: "width"},
                                    "predicted_depth": {1: "height", 2: "width"}})

and use it with ``plugins: [edgedepth_dpt.py]``, ``preprocess: {resize: {policy: fixed, width:
384, height: 384}}`` and ``backend: {type: dpt, model: dpt-large.onnx}``.
"""

from __future__ import annotations

import numpy as np

import edgedepth
from edgedepth.runtime import OnnxBackendFactory, OnnxOptions

#: DPTImageProcessor's defaults: RGB / 255, then (x - 0.5) / 0.5 per channel.
MEAN = np.float32(0.5)
STD = np.float32(0.5)


class DptOptions(OnnxOptions):
    """``model`` (required): the ONNX file exported from DPTForDepthEstimation, or a folder from
    ``edgedepth deploy``. The other keys are those of every ONNX backend."""

    model: edgedepth.InputPath  # type: ignore[assignment]


class DptModel:
    """What the ONNX backend asks of a model: its inputs for an image, its depth from the outputs,
    and what the numbers mean."""

    #: MiDaS-style: larger is nearer, unknown scale and shift.
    depth_kind = edgedepth.DepthKind.RELATIVE_DISPARITY
    #: The ViT's patch (16) and the fusion stages' halvings: sides that are multiples of 32.
    multiple_of = 32

    def __init__(self, options: DptOptions, context: edgedepth.BuildContext) -> None:
        self.options = options

    def inputs(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """H×W×3 RGB, float32 on the 0–255 scale → ``pixel_values`` 1×3×H×W."""
        height, width = image.shape[:2]
        if height != width:  # the ViT-only DPTs read their patch grid as a square
            raise edgedepth.EdgedepthError(
                f"DPT takes square images, not {width}×{height}: set preprocess.resize to "
                "fixed with width = height (384 for dpt-large)"
            )
        pixels = (image.astype(np.float32) * np.float32(1 / 255) - MEAN) / STD
        return {"pixel_values": np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])}

    def depth(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """``predicted_depth`` 1×H×W → H×W."""
        return outputs["predicted_depth"][0]


@edgedepth.hookimpl
def register_backends(register: edgedepth.Register) -> None:
    register(
        "dpt",
        DptOptions,
        OnnxBackendFactory(DptModel),
        description="transformers' DPT exported to ONNX (MiDaS-style relative depth)",
    )
