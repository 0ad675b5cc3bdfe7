"""``manifest.json``: what is known about a graph, written beside every export, deploy folder and
compiled model, and read back by whoever runs it (the ONNX backend, ``deploy``, ``check``).

One typed record instead of dictionaries read key by key: a backend learns the depth kind and
range of a cached export from it without loading anything, the runtime finds the model to run
(``run_model``) and the float model beside a compiled one (``reference_model``), and the deploy
tool adds its results (``qnn``, ``verify``, ``quantization``, ``aihub``) to the same record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind

MANIFEST_NAME = "manifest.json"


class TensorSpec(BaseModel):
    """One input or output of the graph."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str
    #: Sizes; a name (or None) for a symbolic one.
    shape: list[int | str | None]
    dtype: str = "float32"
    layout: str | None = None
    #: ``[low, high]`` the values take when known, or a word ("ImageNet-normalised").
    range: list[float] | str | None = None
    unit: str | None = None


class Manifest(BaseModel):
    """The record of one graph. Unknown keys are kept (tools add their own results)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    format: int | None = None
    #: The backend type that made the graph (``dav2-metric``, ``dpt``): what runs it.
    backend: str | None = None
    #: What the model plugin records about itself (family, variant, kind, …).
    model: dict[str, Any] = {}
    depth_kind: DepthKind | None = None
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    #: The model's own graph options (DAv2: ``normalize``, ``resize_to``, …).
    graph: dict[str, Any] = {}
    #: The model ``edgedepth run`` loads from this folder (relative to it).
    run_model: str | None = None
    #: The float model kept beside a compiled one: the CPU's fallback and the reference.
    reference_model: str | None = None
    #: ``float32``, or ``quantized`` (a QDQ model from ``deploy quantize``).
    precision: str | None = None
    weights_sha256: str | None = None
    tools: dict[str, str] = {}
    #: ``deploy compile --local``: the QNN build; ``verify``: HTP vs CPU on sample frames.
    qnn: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    aihub: dict[str, Any] | None = None

    @property
    def depth_range(self) -> tuple[float, float] | None:
        """(low, high) of the depth when the first output declares it (metric: 0..max_depth)."""
        value_range = self.outputs[0].range if self.outputs else None
        if isinstance(value_range, list) and len(value_range) == 2:
            return float(value_range[0]), float(value_range[1])
        return None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) of a static NCHW image input, when the first input declares one."""
        if not self.inputs:
            return None
        shape = self.inputs[0].shape
        if len(shape) == 4 and all(isinstance(side, int) for side in shape[-2:]):
            return int(shape[-2]), int(shape[-1])  # type: ignore[arg-type]
        return None

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The manifest in ``folder``; None when there is none."""
        path = folder / MANIFEST_NAME
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EdgedepthError(f"{path}: not valid JSON ({exc})") from None
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise EdgedepthError(f"{path}: {where}: {problem['msg']}") from None

    def write(self, folder: Path) -> None:
        """Write ``folder/manifest.json`` whole or not at all (renamed into place)."""
        path = folder / MANIFEST_NAME
        partial = path.with_suffix(".json.partial")
        partial.write_text(self.model_dump_json(indent=2, exclude_unset=True), encoding="utf-8")
        partial.replace(path)
