"""What this machine and this Python are: the operating system, the CPU's native architecture,
the architecture the interpreter was built for, and whether this Python is supported here.

An x64 Python on a Windows-on-Snapdragon laptop runs under emulation: it works, but the
Arm64 QNN execution provider cannot load into it, so it never sees the NPU. That is the most
common reason a laptop "has no NPU", so it is detected here and named wherever it matters.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Supported CPython per platform (also in pyproject.toml and the README). Windows on Arm64
#: needs 3.12: PyYAML publishes no win_arm64 wheel for 3.11 and onnxruntime-qnn none for 3.10.
#: Everywhere else 3.11 is the floor (onnxruntime >= 1.24, needed by onnxruntime-qnn 2.x).
MIN_PYTHON: dict[tuple[str, str], tuple[int, int]] = {
    ("Windows", "arm64"): (3, 12),
}
DEFAULT_MIN_PYTHON = (3, 11)

_ARCH_NAMES = {
    "arm64": "arm64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "x64": "x86_64",
    "em64t": "x86_64",
    "x86": "x86",
    "i386": "x86",
    "i686": "x86",
    "win32": "x86",
}
#: IMAGE_FILE_MACHINE_* values returned by IsWow64Process2.
_WINDOWS_MACHINES = {0xAA64: "arm64", 0x8664: "x86_64", 0x014C: "x86", 0x01C4: "arm"}


def normalize_arch(name: str) -> str:
    """'AMD64' / 'x86_64' → 'x86_64', 'ARM64' / 'aarch64' → 'arm64' (unknown names lowercased)."""
    key = name.strip().lower()
    return _ARCH_NAMES.get(key, key)


def python_build_arch() -> str:
    """The architecture this interpreter was compiled for (not the machine's)."""
    if sys.platform == "win32":
        # 'win-amd64', 'win-arm64' or 'win32': the build, whatever the machine emulates.
        return normalize_arch(sysconfig.get_platform().partition("-")[2] or "x86")
    return normalize_arch(platform.machine())


def _windows_native_machine() -> str | None:
    """IsWow64Process2's native machine: the one answer emulation does not disguise."""
    try:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        is_wow64_process2 = kernel32.IsWow64Process2
    except (ImportError, AttributeError, OSError):
        return None  # not Windows, or Windows older than 10 1709
    process_machine, native_machine = wintypes.USHORT(), wintypes.USHORT()
    is_wow64_process2.argtypes = [
        wintypes.HANDLE,
        ctypes.POINTER(wintypes.USHORT),
        ctypes.POINTER(wintypes.USHORT),
    ]
    if not is_wow64_process2(
        kernel32.GetCurrentProcess(), ctypes.byref(process_machine), ctypes.byref(native_machine)
    ):
        return None
    return _WINDOWS_MACHINES.get(native_machine.value)


def native_arch_from_environ(environ: Mapping[str, str], fallback: str) -> str:
    """The CPU's architecture from the variables Windows sets: an emulated process sees
    PROCESSOR_ARCHITECTURE=AMD64, but PROCESSOR_ARCHITEW6432 (32-bit WOW64) and
    PROCESSOR_IDENTIFIER ('ARMv8 (64-bit) Family 8 …') keep the truth."""
    if environ.get("PROCESSOR_ARCHITEW6432"):
        return normalize_arch(environ["PROCESSOR_ARCHITEW6432"])
    identifier = environ.get("PROCESSOR_IDENTIFIER", "")
    if identifier.upper().startswith("ARMV8") or "ARM64" in identifier.upper():
        return "arm64"
    if environ.get("PROCESSOR_ARCHITECTURE"):
        return normalize_arch(environ["PROCESSOR_ARCHITECTURE"])
    return fallback


def _macos_translated() -> bool:
    """True for an x86-64 Python under Rosetta 2 on Apple silicon."""
    try:
        import ctypes

        libc = ctypes.CDLL("/usr/lib/libSystem.dylib")
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        if libc.sysctlbyname(b"sysctl.proc_translated", ctypes.byref(value), ctypes.byref(size),
                             None, 0) != 0:  # fmt: skip
            return False
        return value.value == 1
    except OSError:
        return False


def native_arch() -> str:
    """The CPU's own architecture, seen through any emulation of this process."""
    build = python_build_arch()
    if sys.platform == "win32":
        return _windows_native_machine() or native_arch_from_environ(os.environ, build)
    if sys.platform == "darwin" and build == "x86_64" and _macos_translated():
        return "arm64"
    return build


def min_python(system: str, arch: str) -> tuple[int, int]:
    """The oldest CPython edgedepth supports on this OS for an interpreter built for ``arch``
    (wheels are per interpreter build: an x64 Python on Arm64 Windows installs win_amd64)."""
    return MIN_PYTHON.get((system, arch), DEFAULT_MIN_PYTHON)


def unsupported_python_reason(system: str, arch: str, version: tuple[int, int]) -> str | None:
    """Why this Python cannot run edgedepth here (one line), or None."""
    needed = min_python(system, arch)
    if version >= needed:
        return None
    where = f"{system} on {arch}"
    why = (
        " (PyYAML has no win_arm64 wheel for 3.11, onnxruntime-qnn none for 3.10)"
        if (system, arch) == ("Windows", "arm64")
        else " (onnxruntime >= 1.24 and onnxruntime-qnn 2.x need it)"
    )
    return (
        f"edgedepth on {where} needs CPython {needed[0]}.{needed[1]} or newer{why}; this is "
        f"{version[0]}.{version[1]}: install the {arch} build of Python {needed[0]}.{needed[1]}+ "
        "from python.org"
    )


def emulation_note(system: str, python_arch: str, machine_arch: str) -> str | None:
    """A one-line warning when the interpreter is not native to the CPU, or None."""
    if python_arch == machine_arch:
        return None
    if system == "Windows" and machine_arch == "arm64":
        return (
            f"this is an {python_arch} Python emulated on an Arm64 Windows: the Snapdragon NPU "
            "is invisible to it (the QNN execution provider is an Arm64 library) and everything "
            "runs slower; install the ARM64 build of CPython 3.12+ from python.org"
        )
    return f"this is an {python_arch} Python on an {machine_arch} CPU (emulated): expect it slow"


@dataclass(frozen=True)
class HostInfo:
    """The facts ``edgedepth doctor`` reports about the machine and the interpreter."""

    os: str
    system: str
    machine_arch: str
    python_arch: str
    python_version: str
    python_implementation: str
    python_executable: str
    cpu_count: int | None
    emulated: bool
    note: str | None
    unsupported_python: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_info() -> HostInfo:
    """This machine and interpreter."""
    system = platform.system()
    build, machine = python_build_arch(), native_arch()
    version = sys.version_info[:2]
    release = platform.release()
    if system == "Windows":
        release = f"{release} ({platform.version()})"  # '11 (10.0.26100)'
    return HostInfo(
        os=f"{system} {release}".strip(),
        system=system,
        machine_arch=machine,
        python_arch=build,
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        python_executable=sys.executable,
        cpu_count=os.cpu_count(),
        emulated=build != machine,
        note=emulation_note(system, build, machine),
        unsupported_python=unsupported_python_reason(system, build, version),
    )


def check_python() -> str | None:
    """:func:`unsupported_python_reason` for this interpreter (cheap: no system calls)."""
    return unsupported_python_reason(platform.system(), python_build_arch(), sys.version_info[:2])
