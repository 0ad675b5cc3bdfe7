"""Where a backend's ONNX graphs run: ``auto`` (the NPU when there is one, else the CPU),
``onnx-cpu`` (float32, or int8 through :mod:`edgedepth.runtime.int8`) or ``qnn`` (the HTP: a
context binary compiled once and cached). Under ``auto`` a QNN session that cannot be built
falls back to the CPU, the reason logged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgedepth.api.errors import EdgedepthError
from edgedepth.runtime.file_identity import content_sha256
from edgedepth.runtime.int8 import Calibration, int8_model, int8_path
from edgedepth.runtime.model_file import ModelFile
from edgedepth.runtime.options import OnnxOptions
from edgedepth.runtime.qnn import no_npu_reason, qnn_has_npu, qnn_target
from edgedepth.runtime.sessions import cpu_session, qnn_session

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("edgedepth")

Size = tuple[int, int]


class Placement:
    """Opens sessions where a config asks; :attr:`name` is where they run (``onnx-cpu`` or
    ``qnn`` once :meth:`resolve` has decided ``auto``; ``auto`` may later fall back)."""

    def __init__(self, options: OnnxOptions, cache_dir: Path) -> None:
        self.options = options
        self.requested = options.runtime
        self.cache_dir = cache_dir
        self.name: str = options.runtime

    @property
    def on_htp(self) -> bool:
        return self.name == "qnn"

    def resolve(self, ready: ModelFile | None = None) -> str:
        """Decide ``auto``: the NPU when there is one, else the CPU. ``ready``: a ready model (a
        QNN context model without a float model beside it can only run on the HTP)."""
        runtime = self.requested
        context_only = ready is not None and ready.is_context_model and ready.reference is None
        if runtime == "auto":
            if qnn_has_npu():
                runtime, why = "qnn", f"NPU: {qnn_target().description}"
            elif context_only:
                runtime, why = "qnn", "a QNN context model with no float model beside it"
            else:
                runtime, why = "onnx-cpu", f"no NPU: {no_npu_reason()}"
            log.info("backend: runtime auto → %s (%s)", runtime, why)
        if context_only and runtime != "qnn":
            assert ready is not None
            raise EdgedepthError(f"{ready.path} is a QNN context model: it needs runtime qnn")
        if runtime == "qnn" and self.options.precision == "int8":
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
        is_context: bool = False,
        calibration: Calibration | None = None,
    ) -> ort.InferenceSession:
        """A session for ``model_path`` (``is_context``: an EPContext model, loaded as it is).
        On qnn the context binary is cached in ``context_dir`` (default: by the model's content
        under the cache folder), one per ``size`` when given, with ``free_dimensions`` fixing
        symbolic sizes (the HTP takes static shapes). Under ``auto``, the CPU on ``fallback``
        when no QNN session can be built. ``calibration``: for an int8 graph made on the CPU."""
        if self.name == "qnn":
            try:
                return self._qnn_session(model_path, context_dir, size, free_dimensions, is_context)
            except EdgedepthError as failure:
                if self.requested != "auto" or fallback is None:
                    raise
                log.warning(
                    "backend: runtime auto: no QNN session (%s); falling back to onnx-cpu", failure
                )
                self.name = "onnx-cpu"
                model_path = fallback
        return self.cpu_session(model_path, context_dir, calibration)

    def cpu_session(
        self,
        model_path: Path,
        derived_dir: Path | None = None,
        calibration: Calibration | None = None,
    ) -> ort.InferenceSession:
        """A CPU session for ``model_path`` at the configured precision (an int8 copy made once
        in ``derived_dir``, by default beside the model's other derived files, calibrated and
        checked on what ``calibration`` gives)."""
        if self.options.precision != "int8":
            return cpu_session(model_path, self.options.threads)
        folder = derived_dir or self.derived_dir(model_path, "int8")
        cached = int8_path(model_path, folder).exists()
        quantised = int8_model(model_path, folder, calibration)
        try:
            return cpu_session(quantised, self.options.threads)
        except EdgedepthError as unreadable:
            if not cached:
                raise
            # A cached graph damaged on disk (a killed copy, a bad sector): made again, once.
            log.warning("warning: backend: %s; quantising again", unreadable)
            quantised.unlink(missing_ok=True)
            return cpu_session(int8_model(model_path, folder, calibration), self.options.threads)

    def _qnn_session(
        self,
        model_path: Path,
        context_dir: Path | None,
        size: Size | None,
        free_dimensions: dict[str, int] | None,
        is_context: bool,
    ) -> ort.InferenceSession:
        cache = None if is_context else self.context_cache_path(model_path, context_dir, size)
        return qnn_session(
            model_path,
            self.options.qnn,
            cache,
            free_dimensions=free_dimensions,
            is_context=is_context,
        )

    def context_cache_path(
        self, model_path: Path, context_dir: Path | None, size: Size | None
    ) -> Path:
        """Where the compiled context model of ``model_path`` (for ``size``) is cached."""
        folder = context_dir or self.derived_dir(model_path, "qnn")
        per_size = f"-{size[0]}x{size[1]}" if size else ""
        return folder / f"{self.options.qnn.context_tag(qnn_target())}{per_size}_ctx.onnx"

    def derived_dir(self, model_path: Path, what: str) -> Path:
        """Where what is made from a ready model (a QNN context binary, an int8 graph) is kept:
        by the model file's content (its sha256 remembered per file version)."""
        digest = content_sha256(model_path, self.cache_dir)
        return self.cache_dir / what / f"{model_path.stem}-{digest[:16]}"


def targets_htp(options: OnnxOptions) -> bool:
    """Whether graphs for ``options`` are built for the HTP (``qnn``, or ``auto`` where there is
    an NPU), decided quietly (``edgedepth check``, ``deploy``)."""
    return options.runtime == "qnn" or (options.runtime == "auto" and qnn_has_npu())
