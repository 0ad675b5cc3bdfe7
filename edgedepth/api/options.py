"""Option types for plugins: :class:`StrictModel` (unknown keys are errors) and paths made
relative to the config file and checked (:data:`InputPath`, :data:`OutputPath`,
:data:`OutputDir`, :data:`ConfigPath`); :class:`CameraIntrinsics` and :data:`HorizontalFov`, the
camera options of stages that make points."""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import os
import textwrap
import typing
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from edgedepth.api.frame import Intrinsics


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base_dir is not None:
        value = Path(base_dir) / value
    return value


def _existing_path(value: Path, info: ValidationInfo) -> Path:
    value = _resolve(value, info)
    if not value.exists():
        raise ValueError(f"file not found: {value}")
    return value


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_folder(folder: Path) -> None:
    """The folder a file or folder will be created in: it (or its nearest existing parent, for
    folders created on the way) must be a writable folder."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"folder is not writable: {existing}")


def check_output_file(path: Path) -> None:
    """A file about to be written: its folder exists and is writable, and it is not a folder.
    Raises ValueError saying which."""
    if not path.parent.is_dir():
        existing = _nearest_existing(path.parent)
        if existing.exists() and not existing.is_dir():
            raise ValueError(f"{existing} is a file, not a folder")
        raise ValueError(f"parent directory does not exist: {path.parent}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name")
    _writable_folder(path.parent)


def _output_path(value: Path, info: ValidationInfo) -> Path:
    value = _resolve(value, info)
    check_output_file(value)
    return value


def _output_dir(value: Path, info: ValidationInfo) -> Path:
    value = _resolve(value, info)
    if value.exists() and not value.is_dir():
        raise ValueError(f"{value} is a file; give a folder")
    _writable_folder(value)
    return value


#: A file or folder that must exist (relative to the config file).
InputPath = Annotated[Path, AfterValidator(_existing_path)]
#: A file to be written: its folder must exist and be writable (relative to the config file).
OutputPath = Annotated[Path, AfterValidator(_output_path)]
#: A folder to be written into (created if missing): it, or the folder it will be created in,
#: must be writable (relative to the config file).
OutputDir = Annotated[Path, AfterValidator(_output_dir)]
#: Any path, made relative to the config file, not checked.
ConfigPath = Annotated[Path, AfterValidator(_resolve)]


def output_fields(model: type[BaseModel]) -> list[str]:
    """Names of ``model``'s fields that are written to (:data:`OutputPath`, :data:`OutputDir`),
    e.g. to redirect a sink's files somewhere else."""
    writers = {_output_path, _output_dir}
    names = []
    for name, field in model.model_fields.items():
        validators = [m.func for m in field.metadata if isinstance(m, AfterValidator)]
        for arg in typing.get_args(field.annotation):  # Optional[OutputPath]
            validators += [
                m.func for m in getattr(arg, "__metadata__", ()) if isinstance(m, AfterValidator)
            ]
        if writers & set(validators):
            names.append(name)
    return names


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored. An attribute docstring
    (a string under the field) is the option's description, shown by ``edgedepth plugins NAME``
    and in the JSON schema (see :func:`described`). The validator is built when the model first
    validates, not when its module is imported: a start builds only what its config names."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


def described(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with each field's description taken from its attribute docstring (in the class
    that declares it, or a base), and so for the models of its nested sections; a description
    given with ``Field(description=...)`` is kept. Read from the source when asked (``plugins``,
    the JSON schema): pydantic's ``use_attribute_docstrings`` reads every class's source when the
    class is made, which cost every start about 40 ms."""
    changed = False
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        for name, text in _attribute_docstrings(cls).items():
            field = model.model_fields.get(name)
            if field is not None and not field.description:
                field.description = text
                changed = True
    for field in model.model_fields.values():
        for nested in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(nested, type) and issubclass(nested, BaseModel) and nested is not model:
                described(nested)
    if changed and model.__pydantic_complete__:
        model.model_rebuild(force=True)  # a schema built before the descriptions were read
    return model


@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for the string literals right under annotated names in ``cls``'s
    own body (none when its source cannot be read, as in a frozen application)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    if not isinstance(body, ast.ClassDef):
        return {}
    docs = {}
    for statement, following in itertools.pairwise(body.body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


class CameraIntrinsics(StrictModel):
    """Pinhole intrinsics of the captured frames, in pixels (OpenCV/ROS convention: the centre
    of the top-left pixel is at 0, 0; what a calibration or ``CameraInfo.k`` gives)."""

    fx: float = Field(gt=0)
    """Focal length along x."""
    fy: float = Field(gt=0)
    """Focal length along y."""
    cx: float
    """Principal point, x."""
    cy: float
    """Principal point, y."""

    @property
    def intrinsics(self) -> Intrinsics:
        """As the frames carry them (:class:`edgedepth.Intrinsics`)."""
        return Intrinsics(self.fx, self.fy, self.cx, self.cy)


#: A horizontal field of view in degrees, for cameras that report no intrinsics.
HorizontalFov = Annotated[float, Field(gt=0, lt=180)]
