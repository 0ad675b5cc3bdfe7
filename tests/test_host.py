"""Which Python edgedepth supports where, and the x64-Python-on-Arm64-Windows trap: the
interpreter runs emulated and the NPU's execution provider (an Arm64 library) never loads."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

from edgedepth.system import host

REPO = Path(__file__).resolve().parent.parent
#: What Windows sets in an x64 process emulated on a Snapdragon (PROCESSOR_ARCHITECTURE lies).
EMULATED_X64_ON_SNAPDRAGON = {
    "PROCESSOR_ARCHITECTURE": "AMD64",
    "PROCESSOR_IDENTIFIER": (
        "ARMv8 (64-bit) Family 8 Model 1 Revision 201, Qualcomm Technologies Inc"
    ),
    "NUMBER_OF_PROCESSORS": "12",
}


def test_supported_python_per_platform():
    reason = host.unsupported_python_reason("Windows", "arm64", (3, 11))
    assert reason and "needs CPython 3.12" in reason and "PyYAML" in reason
    assert host.unsupported_python_reason("Windows", "arm64", (3, 12)) is None
    # An x64 interpreter installs win_amd64 wheels: 3.11 is enough for it (but see below).
    assert host.unsupported_python_reason("Windows", "x86_64", (3, 11)) is None
    assert "needs CPython 3.11" in host.unsupported_python_reason("Linux", "x86_64", (3, 10))
    # pyproject says the same: the floor everywhere, and the README names the Arm64 rule.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floor = SpecifierSet(project["requires-python"])
    assert "3.11" in floor and "3.10" not in floor
    readme = (REPO / "README.md").read_text()
    assert "Windows on Arm64" in readme and "3.12" in readme and "ARM64" in readme


def test_an_emulated_x64_python_on_a_snapdragon_is_recognised():
    native = host.native_arch_from_environ(EMULATED_X64_ON_SNAPDRAGON, fallback="x86_64")
    assert native == "arm64"
    note = host.emulation_note("Windows", "x86_64", native)
    assert note and "NPU is invisible" in note and "ARM64 build of CPython" in note
    assert host.native_arch_from_environ({"PROCESSOR_ARCHITECTURE": "ARM64"}, "x") == "arm64"
    assert host.native_arch_from_environ({"PROCESSOR_ARCHITECTURE": "AMD64"}, "x") == "x86_64"
    assert host.emulation_note("Windows", "arm64", "arm64") is None
    assert host.normalize_arch("AMD64") == "x86_64" and host.normalize_arch("aarch64") == "arm64"


def test_this_machine_is_described():
    info = host.host_info()
    assert info.python_arch == info.machine_arch and not info.emulated and info.note is None
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))


def test_the_command_line_refuses_an_unsupported_python_in_one_line():
    refuse = (
        "import edgedepth.system.host as h\n"
        "h.check_python = lambda: h.unsupported_python_reason('Windows', 'arm64', (3, 11))\n"
        "from edgedepth.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", refuse, "plugins"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: edgedepth on Windows on arm64 needs CPython 3.12")
