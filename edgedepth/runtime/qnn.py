"""Qualcomm's QNN execution provider (``onnxruntime-qnn``): the package and its QNN version, the
device it offers (a real NPU, or the HTP emulator on a PC) and the QNN version a context binary
was built with. Its options: :class:`edgedepth.runtime.options.QnnOptions`; sessions on it:
:func:`edgedepth.runtime.sessions.qnn_session`.

The EP ships as a plugin library: it is registered with
``onnxruntime.register_execution_provider_library`` and selected per device with
``SessionOptions.add_provider_for_devices`` (``providers=["QNNExecutionProvider"]`` silently gives
a CPU session with these wheels). The EP ignores option names it does not know, so we check them.
"""

from __future__ import annotations

import logging
import mmap
import os
import platform
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedepth.api.errors import EdgedepthError

log = logging.getLogger("edgedepth")


#: How an NPU's description (Windows: the device's friendly name) names the chip of a preset.
#: Longest first: "X2 Elite" must not match as "X Elite".
PRESET_BY_DESCRIPTION = (
    ("x2 elite", "snapdragon-x2-elite"),
    ("x elite", "snapdragon-x-elite"),
    ("8 elite", "snapdragon-8-elite"),
    ("8 gen 3", "snapdragon-8-gen-3"),
)
#: QNN (QAIRT) SDK bundled in each onnxruntime-qnn release, for packages that do not record it in
#: ``onnxruntime_qnn.build_and_package_info.qnn_version`` (read from the wheels).
QNN_VERSION_BY_PACKAGE = {"2.3.0": "2.47.0", "2.5.0": "2.49.40", "2.7.0": "2.51.0"}

# --- the onnxruntime-qnn package -----------------------------------------------------------------


def qnn_package() -> Any:
    """``onnxruntime_qnn``, or a one-line error saying how to get it (and why an emulated Python
    cannot)."""
    try:
        import onnxruntime_qnn
    except ImportError:
        from edgedepth.system.host import host_info

        note = host_info().note
        raise EdgedepthError(
            "runtime qnn needs the QNN execution provider: pip install 'edgedepth[qnn]' "
            "(onnxruntime-qnn)" + (f"; {note}" if note else "")
        ) from None
    return onnxruntime_qnn


def htp_backend_path() -> str:
    """Absolute path of the HTP backend library shipped in onnxruntime-qnn (QnnHtp.dll on
    Windows, libQnnHtp.so on Linux), as Qualcomm's own samples pass it."""
    package = qnn_package()
    if hasattr(package, "get_qnn_htp_path"):
        return str(package.get_qnn_htp_path())
    name = "QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so"
    return str(Path(package.get_library_path()).parent / name)


def qnn_versions() -> tuple[str | None, str | None]:
    """(onnxruntime-qnn version, QNN/QAIRT SDK version it bundles); None where unknown."""
    try:
        import onnxruntime_qnn
    except ImportError:
        return None, None
    info = getattr(onnxruntime_qnn, "build_and_package_info", None)
    package = getattr(onnxruntime_qnn, "__version__", None) or getattr(info, "__version__", None)
    qnn = getattr(info, "qnn_version", None) or QNN_VERSION_BY_PACKAGE.get(package or "")
    return package, qnn


def version_tuple(version: str) -> tuple[int, ...]:
    """'v2.51.0.260929181845' → (2, 51, 0): major, minor, patch (the build stamp dropped)."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part or 0) for part in match.groups())


# --- QNN EP registration -------------------------------------------------------------------------


@dataclass(frozen=True)
class QnnTarget:
    """Where QNN runs in this process: a real NPU, or Qualcomm's HTP emulator on the CPU."""

    ep_device: Any
    npu: bool
    #: The device's own description (Windows: its friendly name), or what the emulator is.
    description: str
    #: The :data:`QNN_PRESETS` name recognised from the description, if any.
    preset: str | None


_registration_lock = threading.Lock()
_qnn_target: QnnTarget | None = None
#: Why there is none (kept: every later call in the process gets the same answer, unprobed).
_qnn_error: EdgedepthError | None = None
_emulator_announced = False


def preset_for_description(description: str) -> str | None:
    """The preset a device description names ('Snapdragon(R) X Elite - X1E78100 - …')."""
    text = re.sub(r"[^a-z0-9]+", " ", description.lower())
    return next((preset for words, preset in PRESET_BY_DESCRIPTION if words in text), None)


def qnn_target() -> QnnTarget:
    """The QNN EP's device (registering the plugin library once per process); the same
    EdgedepthError on every call when there is none."""
    global _qnn_target, _qnn_error
    with _registration_lock:
        if _qnn_target is None and _qnn_error is None:
            try:
                _qnn_target = _find_qnn_target()
            except EdgedepthError as exc:
                _qnn_error = exc
        if _qnn_error is not None:
            raise type(_qnn_error)(*_qnn_error.args) from None
        assert _qnn_target is not None
        return _qnn_target


#: Where the onnxruntime-qnn wheel ships Qualcomm's HTP emulator (the CPU device its EP
#: offers): Linux x86-64 only. Elsewhere QnnHtp drives a real NPU or nothing.
HTP_EMULATOR_HOSTS = {("Linux", "x86_64")}
#: What to do when Windows on Arm64 has no NPU device: its driver is what is missing.
NPU_DRIVER_HELP = (
    "the Qualcomm Hexagon NPU driver is missing or not working (Device Manager should list "
    "'Qualcomm(R) Hexagon(TM) NPU' under Neural processors): install it from Windows Update "
    "(Settings > Windows Update > Advanced options > Optional updates > Driver updates) or the "
    "laptop maker's support page, restart, then run `edgedepth doctor --verify`; until then "
    "runtime auto uses the CPU"
)


def choose_device(devices: list[Any], system: str, machine: str) -> Any:
    """The EP device QNN runs on: the NPU, else the HTP emulator where the wheel has one
    (``system``/``machine`` as :mod:`platform` and :func:`~edgedepth.system.host.normalize_arch`
    name them); a one-line error saying what is missing otherwise."""
    import onnxruntime as ort

    kinds = ort.OrtHardwareDeviceType
    npus = [d for d in devices if d.device.type == kinds.NPU]
    if npus:
        return npus[0]
    # A CPU device is the emulator only where the wheel ships one; a GPU device belongs to
    # QNN's GPU backend, not the HTP.
    emulators = [d for d in devices if d.device.type == kinds.CPU]
    if emulators and (system, machine) in HTP_EMULATOR_HOSTS:
        return emulators[0]
    offered = ", ".join(f"{d.device.type.name} {d.device.vendor}" for d in devices)
    found = f" (it offers only: {offered})" if offered else ""
    if (system, machine) == ("Windows", "arm64"):
        raise EdgedepthError(f"the QNN execution provider finds no NPU{found}: {NPU_DRIVER_HELP}")
    from edgedepth.system.host import host_info

    note = host_info().note
    raise EdgedepthError(
        f"the QNN execution provider found no Qualcomm NPU on this machine{found}"
        + (f": {note}" if note else "")
    )


def _find_qnn_target() -> QnnTarget:
    """Register the EP's library if needed and pick its NPU, else its HTP emulator."""
    import onnxruntime as ort

    package = qnn_package()
    name = package.get_ep_name()
    if sys.platform == "win32":
        # fastRPC finds the HTP skel libraries only through ADSP_LIBRARY_PATH, not beside
        # QnnHtp.dll: without it the NPU falls back to a slower user-driver path.
        folder = str(Path(package.get_library_path()).parent)
        paths = os.environ.get("ADSP_LIBRARY_PATH", "")
        if folder not in paths.split(";"):
            os.environ["ADSP_LIBRARY_PATH"] = ";".join(p for p in (folder, paths) if p)
    if not any(device.ep_name == name for device in ort.get_ep_devices()):
        try:
            ort.register_execution_provider_library(name, package.get_library_path())
        except Exception as exc:
            raise EdgedepthError(f"cannot load the QNN execution provider: {exc}") from None
    devices = [device for device in ort.get_ep_devices() if device.ep_name == name]
    from edgedepth.system.host import normalize_arch

    device = choose_device(devices, platform.system(), normalize_arch(platform.machine()))
    npu = device.device.type == ort.OrtHardwareDeviceType.NPU
    metadata = {str(k): str(v) for k, v in dict(device.device.metadata).items()}
    description = metadata.get("Description", "")
    if not npu:
        description = f"HTP emulator on the CPU ({platform.machine()}, {device.device.vendor})"
    return QnnTarget(
        ep_device=device,
        npu=npu,
        description=description or "Qualcomm NPU",
        preset=preset_for_description(description) if npu else None,
    )


def qnn_has_npu() -> bool:
    """True when the QNN EP is installed and reports an NPU (a Snapdragon device)."""
    try:
        return qnn_target().npu
    except EdgedepthError:
        return False


def no_npu_reason() -> str:
    """Why runtime auto/qnn finds no NPU here, in a few words."""
    from edgedepth.system.host import host_info

    host = host_info()
    if host.note:
        return host.note
    try:
        import onnxruntime_qnn  # noqa: F401
    except ImportError:
        return "onnxruntime-qnn is not installed (pip install 'edgedepth[qnn]')"
    try:
        target = qnn_target()
    except EdgedepthError as exc:
        return str(exc)
    if target.npu:
        return "an NPU is present"
    return f"the QNN EP offers only its {target.description}"


def announce_emulator(target: QnnTarget) -> None:
    """Say once per process, loudly, that QNN runs on the emulator (minutes, not milliseconds)."""
    global _emulator_announced
    if target.npu or _emulator_announced:
        return
    _emulator_announced = True
    from edgedepth.system.host import host_info

    note = host_info().note
    log.warning(
        "qnn: NO NPU on this machine: running Qualcomm's %s, about 30 s per ViT-S frame. "
        "It checks that the model compiles and what it computes, not how fast the NPU is.%s",
        target.description,
        f" ({note})" if note else "",
    )


# --- context binaries ----------------------------------------------------------------------------

_SDK_VERSION_ATTRIBUTE = re.compile(rb"ep_sdk_version\x22([\x00-\x7f])")
_SDK_VERSION_STAMP = re.compile(rb"v(\d+\.\d+\.\d+)\.\d{6,}")


def context_sdk_version(model_path: Path) -> str | None:
    """The QNN SDK version an EPContext model's binary was built with: the EPContext node's
    ``ep_sdk_version`` attribute, else the stamp in the context binary's header."""
    with (
        open(model_path, "rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        match = _SDK_VERSION_ATTRIBUTE.search(data)
        if match:  # AttributeProto field 4 (s): a length byte, then the version string
            length = match.group(1)[0]
            return bytes(data[match.end() : match.end() + length]).decode("ascii", "replace")
    for binary in sorted(model_path.parent.glob("*.bin")):
        with open(binary, "rb") as handle:
            stamp = _SDK_VERSION_STAMP.search(handle.read(1 << 20))
        if stamp:
            return stamp.group(0).decode("ascii")
    return None


def check_context_version(model_path: Path) -> None:
    """A one-line error when the context binary comes from a newer QNN than the local one
    (QNN loads binaries from the same or older SDKs only)."""
    built_with = context_sdk_version(model_path)
    package, local = qnn_versions()
    if not built_with or not local:
        return
    if version_tuple(built_with)[:3] > version_tuple(local)[:3]:
        raise EdgedepthError(
            f"{model_path}: context binary built with QNN {_dotted(built_with)}, newer than "
            f"QNN {local} in onnxruntime-qnn {package} (QNN loads binaries from the same or an "
            f"older SDK only): compile it again with --qairt_version {local_qairt_version()} "
            "(edgedepth deploy compile --aihub does) or --local, or upgrade onnxruntime-qnn"
        )


def _dotted(version: str) -> str:
    return ".".join(str(part) for part in version_tuple(version))


def local_qairt_version() -> str | None:
    """'2.51': the QAIRT major.minor that AI Hub should compile for to load here."""
    _, local = qnn_versions()
    return ".".join(str(part) for part in version_tuple(local)[:2]) if local else None
