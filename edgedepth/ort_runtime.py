"""Where a backend's ONNX graphs run, for any backend plugin that runs ONNX models (the DAv2
backends use it): ``auto`` (the NPU when there is one, else the CPU), ``onnx-cpu`` (float32, or
int8 through :mod:`edgedepth.cpu_int8`) or ``qnn`` (the HTP: a context binary compiled once and
cached). Under ``auto`` a QNN session that cannot be built falls back to the CPU, the reason
logged. :class:`SessionsBySize` keeps the sessions of graphs exported for different input sizes."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from edgedepth.cpu_int8 import int8_model
from edgedepth.errors import EdgedepthError
from edgedepth.models.dav2_weights import weights_sha256
from edgedepth.ort_session import cpu_session, is_context_model, qnn_session
from edgedepth.qnn import QnnOptions, no_npu_reason, qnn_has_npu, qnn_target

log = logging.getLogger("edgedepth")

Size = tuple[int, int]


class OrtRuntime:
    """Opens sessions on the runtime a config asks for; :attr:`name` is where they run."""

    def __init__(
        self,
        requested: Literal["auto", "onnx-cpu", "qnn"],
        qnn: QnnOptions,
        cache_dir: Path,
        precision: Literal["float32", "int8"] = "float32",
        threads: int | None = None,
    ) -> None:
        self.requested = requested
        self.qnn = qnn
        self.cache_dir = cache_dir
        self.precision = precision
        self.threads = threads
        #: ``onnx-cpu`` or ``qnn`` once :meth:`resolve` has run (``auto`` may later fall back).
        self.name: str = requested

    def resolve(self, context_model: Path | None = None, float_model: Path | None = None) -> str:
        """Decide ``auto``: the NPU when there is one, else the CPU. ``context_model``: a ready
        model that is a QNN context model; ``float_model``: the float model a deploy folder
        keeps beside it (the CPU's fallback)."""
        runtime = self.requested
        if runtime == "auto":
            if qnn_has_npu():
                runtime, why = "qnn", f"NPU: {qnn_target().description}"
            elif context_model is not None and float_model is None:
                runtime, why = "qnn", "a QNN context model with no float model beside it"
            else:
                runtime, why = "onnx-cpu", f"no NPU: {no_npu_reason()}"
            log.info("backend: runtime auto → %s (%s)", runtime, why)
        if context_model is not None and runtime != "qnn" and float_model is None:
            raise EdgedepthError(f"{context_model} is a QNN context model: it needs runtime qnn")
        if runtime == "qnn" and self.precision == "int8":
            log.info("backend: precision int8 is for the CPU; the HTP runs qnn.precision")
        self.name = runtime
        return runtime

    def open(
        self,
        model_path: Path,
        context_dir: Path | None = None,
        fallback: Path | None = None,
        *,
        size: Size | None = None,
        free_dimensions: dict[str, int] | None = None,
    ) -> ort.InferenceSession:
        """A session for ``model_path``. On qnn the context binary is cached in ``context_dir``
        (default: by the model's content under the cache folder), one per ``size`` when given,
        with ``free_dimensions`` fixing symbolic sizes (the HTP takes static shapes). Under
        ``auto``, the CPU on ``fallback`` when no QNN session can be built."""
        if self.name == "qnn":
            try:
                return self._qnn_session(model_path, context_dir, size, free_dimensions)
            except EdgedepthError as failure:
                if self.requested != "auto" or fallback is None:
                    raise
                log.warning(
                    "backend: runtime auto: no QNN session (%s); falling back to onnx-cpu", failure
                )
                self.name = "onnx-cpu"
                model_path = fallback
        if self.precision == "int8":
            model_path = int8_model(model_path, context_dir or self.derived_dir(model_path, "int8"))
        return cpu_session(model_path, self.threads)

    def _qnn_session(
        self,
        model_path: Path,
        context_dir: Path | None,
        size: Size | None,
        free_dimensions: dict[str, int] | None,
    ) -> ort.InferenceSession:
        cache = None
        if not is_context_model(model_path):
            folder = context_dir or self.derived_dir(model_path, "qnn")
            per_size = f"-{size[0]}x{size[1]}" if size else ""
            cache = folder / f"{self.qnn.context_tag(qnn_target())}{per_size}_ctx.onnx"
        return qnn_session(model_path, self.qnn, cache, free_dimensions=free_dimensions)

    def derived_dir(self, model_path: Path, what: str) -> Path:
        """Where what is made from a ready model (a QNN context binary, an int8 graph) is kept:
        by the model file's content (its sha256 remembered per file version)."""
        digest = weights_sha256(model_path, self.cache_dir)
        return self.cache_dir / what / f"{model_path.stem}-{digest[:16]}"


class SessionsBySize:
    """Open sessions by input size (height, width), the least recently used closed beyond
    ``keep``; every size ever opened is remembered, to tell a new one."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._open: OrderedDict[Size, Any] = OrderedDict()
        self.seen: set[Size] = set()

    def get(self, size: Size) -> Any | None:
        session = self._open.get(size)
        if session is not None:
            self._open.move_to_end(size)
        return session

    def is_new(self, size: Size) -> bool:
        """A size not seen before, after others were (the first one is not news)."""
        return bool(self.seen) and size not in self.seen

    def add(self, size: Size, session: Any) -> None:
        self._open[size] = session
        self.seen.add(size)
        if len(self._open) > self.keep:
            closed, _ = self._open.popitem(last=False)
            log.debug("backend: closed the session for %d×%d (max_shapes)", *closed)

    def clear(self) -> None:
        self._open.clear()
