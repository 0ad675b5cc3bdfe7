"""The layouts of ready DepthAnythingV2 ONNX files, told apart by their tensor names, and the
host-side pre/post processing each needs. No torch: this is how Windows on Arm runs a model.

- ``edgedepth``: ``image`` (1×3×H×W float RGB on the 0–255 scale with the normalisation inside,
  or ImageNet-normalised when its manifest says ``graph.normalize: false``) → ``depth``
  1×1×H×W. What ``edgedepth deploy`` and the export cache write.
- ``huggingface``: ``pixel_values`` (batch_size×num_channels×height×width, all symbolic; RGB
  ImageNet-normalised: the image processor rescales by 1/255 and normalises outside the graph)
  → ``predicted_depth`` batch_size×height×width. The ``onnx/model.onnx`` of the Hugging Face
  repositories (onnx-community/depth-anything-v2-small, -base, -large), exported with Optimum's
  depth-estimation layout.
- ``qai-hub-models``: ``image`` (1×3×518×518 float RGB in [0, 1], the normalisation inside)
  → ``depth_estimates`` 1×1×518×518, as Qualcomm AI Hub Models' ``depth_anything_v2`` documents
  it (model.py: ``get_input_spec``, ``get_output_names``). Its QNN, TFLite and precompiled
  targets are compiled channel-last (``--force_channel_last_input image``,
  ``--force_channel_last_output depth_estimates``): 1×518×518×3 in, 1×518×518×1 out; the
  shapes say which.

Any other single-input model is taken as the ``edgedepth`` contract under its own tensor names.
Symbolic sizes (the Hugging Face files) are fixed per input size for the QNN HTP, which takes
static shapes only (:meth:`OnnxLayout.free_dimensions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgedepth.models.dav2.graph import INPUT_NAME, OUTPUT_NAME, image_tensor

#: The ViT patch: the Hugging Face and AI Hub graphs take sides that are multiples of it.
PATCH_SIZE = 14


@dataclass(frozen=True)
class OnnxLayout:
    """How to feed a ready model and read its depth."""

    #: ``edgedepth``, ``huggingface`` or ``qai-hub-models``.
    name: str
    input_name: str
    output_name: str
    #: The input's shape as the file declares it: ints, or names for symbolic sizes.
    input_shape: tuple[int | str | None, ...]
    #: The graph takes RGB / 255 (AI Hub), else RGB on the 0–255 scale.
    unit_range: bool
    #: ImageNet normalisation on the host (the graph does not normalise).
    normalize_on_host: bool
    #: NHWC input and output (AI Hub's channel-last compiles).
    channels_last: bool

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) the model takes, or None when they are symbolic."""
        spatial = self.input_shape[1:3] if self.channels_last else self.input_shape[-2:]
        return spatial if all(isinstance(side, int) for side in spatial) else None  # type: ignore[return-value]

    @property
    def multiple_of(self) -> int:
        """What the input's sides must be multiples of (edgedepth graphs check their own)."""
        return 1 if self.name == "edgedepth" else PATCH_SIZE

    def tensor(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 RGB, float32 on the 0–255 scale → the model's input tensor."""
        tensor = image_tensor(image, normalize_in_graph=not self.normalize_on_host)
        if self.unit_range:
            tensor = tensor * np.float32(1 / 255)
        if self.channels_last:
            tensor = np.ascontiguousarray(tensor.transpose(0, 2, 3, 1))
        return tensor

    def depth(self, output: np.ndarray) -> np.ndarray:
        """The model's output → an H×W depth map."""
        if output.ndim == 4:
            return output[0, :, :, 0] if self.channels_last else output[0, 0]
        return output[0] if output.ndim == 3 else output

    def free_dimensions(self, size: tuple[int, int]) -> dict[str, int]:
        """Symbolic input dimension → its value for a 1×3×``size`` input (ONNX Runtime's
        ``add_free_dimension_override_by_name``): a static graph for the HTP."""
        values = (1, *size, 3) if self.channels_last else (1, 3, *size)
        return {
            name: value
            for name, value in zip(self.input_shape, values, strict=True)
            if isinstance(name, str)
        }


def detect_layout(inputs: list[Any], outputs: list[Any], normalize_in_graph: bool) -> OnnxLayout:
    """The layout of a model from its session's ``get_inputs()`` / ``get_outputs()`` (name and
    shape of each). ``normalize_in_graph``: what an ``edgedepth`` graph's manifest says."""
    first_in, first_out = inputs[0], outputs[0]
    shape = tuple(first_in.shape)
    names = {first_in.name, *(output.name for output in outputs)}
    if {"pixel_values", "predicted_depth"} <= names:
        return OnnxLayout(
            "huggingface", "pixel_values", "predicted_depth", shape, False, True, False
        )
    if "depth_estimates" in names and first_in.name == "image":
        channels_last = len(shape) == 4 and shape[-1] == 3 and shape[1] != 3
        return OnnxLayout(
            "qai-hub-models", "image", "depth_estimates", shape, True, False, channels_last
        )
    output_name = OUTPUT_NAME if OUTPUT_NAME in names else first_out.name
    input_name = first_in.name or INPUT_NAME
    return OnnxLayout(
        "edgedepth", input_name, output_name, shape, False, not normalize_in_graph, False
    )
