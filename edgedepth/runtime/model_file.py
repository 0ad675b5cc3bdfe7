"""A ready model as a user names it (``backend.model:``): an ONNX file, an EPContext model (a QNN
context binary beside it), or a folder (from ``edgedepth deploy``, AI Hub, or a Hugging Face
repository as downloaded). What it is, which file runs, and which float model stands beside it are
read once, here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedepth.api.errors import EdgedepthError
from edgedepth.runtime.manifest import Manifest

#: Where a folder's model is, when its manifest does not say (``onnx/model.onnx``: a Hugging
#: Face repository as downloaded).
MODEL_NAMES = ("model_ctx.onnx", "model.onnx", "onnx/model.onnx")


def is_context_model(model_path: Path) -> bool:
    """True for an EPContext model (its nodes point to a precompiled QNN context binary)."""
    with open(model_path, "rb") as handle:
        head = handle.read(1 << 20)
    return b"EPContext" in head


@dataclass(frozen=True)
class ModelFile:
    """The model to run, what its folder's manifest says, and the float model kept beside a
    compiled one (the CPU's fallback)."""

    path: Path
    #: The folder's manifest (an empty one when there is none).
    manifest: Manifest
    #: An EPContext model: runs on the QNN HTP only.
    is_context_model: bool
    #: The float model beside a context model, when the manifest names one.
    reference: Path | None

    @property
    def folder(self) -> Path:
        return self.path.parent

    @classmethod
    def open(cls, given: Path) -> ModelFile:
        """A model file, or a folder whose manifest (or usual file names) says which model."""
        if not given.exists():
            raise EdgedepthError(f"model: file not found: {given}")
        folder = given if given.is_dir() else given.parent
        manifest = Manifest.read(folder) or Manifest()
        path = given if given.is_file() else _model_in(given, manifest)
        context = is_context_model(path)
        return cls(path, manifest, context, _reference(folder, path, manifest))

    def for_cpu(self) -> Path:
        """What the CPU runs: the model itself, or the float model beside a context model."""
        if not self.is_context_model:
            return self.path
        if self.reference is None:
            raise EdgedepthError(f"{self.path} is a QNN context model: it needs runtime qnn")
        return self.reference


def _model_in(folder: Path, manifest: Manifest) -> Path:
    for name in (manifest.run_model, *MODEL_NAMES):
        if name and (folder / name).is_file() and _inside(folder, folder / name):
            return folder / name
    raise EdgedepthError(f"model: {folder} holds no model.onnx (nor a manifest naming one)")


def _reference(folder: Path, model_path: Path, manifest: Manifest) -> Path | None:
    """The float model a deploy folder keeps beside its context binary; the manifest names it
    relative to the folder."""
    name = manifest.reference_model
    reference = folder / name if name else None
    if reference is None or reference.resolve() == model_path.resolve():
        return None
    if not _inside(folder, reference):
        return None
    return reference if reference.is_file() and not is_context_model(reference) else None


def _inside(folder: Path, path: Path) -> bool:
    """A manifest names files in its own folder only."""
    return path.resolve().is_relative_to(folder.resolve())
