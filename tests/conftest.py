from __future__ import annotations

import ast
import functools
import inspect
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).parent
SLEEPY = str(TESTS / "plugins" / "sleepy.py")

# The `edgedepth` subprocesses cache their bytecode, as on any install: a sandbox's
# PYTHONDONTWRITEBYTECODE would have each of them compile edgedepth's modules again.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# A test run started in the background by a script (`pytest &`) ignores SIGINT, and an ignored
# signal stays ignored in every child: the Ctrl-C tests would send SIGINT to processes that
# cannot receive it. With a handler here, children start with the default disposition.
signal.signal(signal.SIGINT, signal.default_int_handler)

#: Markers applied from what a test imports (the Windows-on-Arm64 CI runs the rest: it has
#: neither torch nor OpenCV): top-level package → marker.
IMPORT_MARKERS = {"torch": "torch", "transformers": "torch", "cv2": "opencv"}


def _imported(tree: ast.AST) -> set[str]:
    """Top-level packages a piece of code imports, or asks for with pytest.importorskip."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


@functools.cache
def _module_needs(path: Path) -> frozenset[str]:
    """Markers a test module (or a helper it imports from tests/) needs at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = ast.Module(
        body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))],
        type_ignores=[],
    )
    needs = set()
    for name in _imported(top_level):
        root = name.split(".")[0]
        if root in IMPORT_MARKERS:
            needs.add(IMPORT_MARKERS[root])
        if root == "tests" and "." in name:
            helper = TESTS / (name.split(".", 1)[1].replace(".", "/") + ".py")
            needs |= _module_needs(helper) if helper.is_file() else set()
    return frozenset(needs)


#: The `qnn` tests run on Qualcomm's HTP emulator, which only the Linux x86-64 onnxruntime-qnn
#: wheel ships (on a Windows runner without an NPU the QNN EP offers no device at all).
QNN_EMULATOR = sys.platform == "linux" and platform.machine() == "x86_64"
ON_WINDOWS = sys.platform == "win32"
#: Where the lean runtime is all there is: no torch or OpenCV wheels for Windows on Arm64.
WINDOWS_ARM64 = sysconfig.get_platform() == "win-arm64"

# --- the skips CI accepts -----------------------------------------------------------------------
# Under CI (the CI variable, set by .ci/run and by every CI service) a skip fails the test unless
# its reason is one of these and the platform is the one that justifies it: a missing package,
# display or permission on a CI machine is a broken install, not a reason to pass quietly.

NO_EMULATOR = "needs the QNN HTP emulator (Linux x86-64)"
NO_POSIX_SIGNALS = "sends POSIX signals to a child process"
NO_PSEUDO_TERMINAL = "a POSIX pseudo-terminal"
POSIX_VENV = "the venv layout below is POSIX's"
WINDOWS_ONLY = "a Windows-only API (DirectShow cameras)"
POSIX_PIPE = "a POSIX pipe whose reader is gone (EPIPE, POLLERR)"

#: Skip reason → whether this platform justifies it.
PLATFORM_SKIPS: dict[str, bool] = {
    NO_EMULATOR: not QNN_EMULATOR,
    NO_POSIX_SIGNALS: ON_WINDOWS,
    NO_PSEUDO_TERMINAL: ON_WINDOWS,
    POSIX_VENV: ON_WINDOWS,
    POSIX_PIPE: ON_WINDOWS,
    WINDOWS_ONLY: not ON_WINDOWS,
}
#: Packages an install lacks by design, and where (``pytest.importorskip`` may skip for them
#: there, nowhere else): Windows on Arm64 has no torch or OpenCV wheels and its workflow installs
#: the lean runtime, .[qnn,hub,eval,test]; onnxruntime-qnn has no macOS wheel.
MISSING_BY_DESIGN: dict[str, bool] = {
    **dict.fromkeys(
        ("torch", "transformers", "safetensors", "cv2", "zenoh", "mcap_ros2", "rosbags"),
        WINDOWS_ARM64,
    ),
    "onnxruntime_qnn": sys.platform == "darwin",
}


def allowed_skip(reason: str) -> bool:
    """Whether CI accepts a skip with this reason on this platform (see :data:`PLATFORM_SKIPS`
    and :data:`MISSING_BY_DESIGN`)."""
    if PLATFORM_SKIPS.get(reason, False):
        return True
    missing = re.match(r"could not import '([\w.]+)'", reason)  # pytest.importorskip's words
    return bool(missing) and MISSING_BY_DESIGN.get(missing[1].split(".")[0], False)


def _fail_skips_under_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (os.environ.get("CI") and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not allowed_skip(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI: {reason} (CI runs every test; the skips it accepts are listed "
            "in tests/conftest.py: PLATFORM_SKIPS, MISSING_BY_DESIGN)"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _fail_skips_under_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield  # a module-level importorskip is a skip of the whole module
    _fail_skips_under_ci(report)
    return report


#: For tests that signal a child process (SIGINT, SIGTERM, SIGKILL): Windows has no such
#: delivery (send_signal terminates the process instead).
POSIX_SIGNALS = pytest.mark.skipif(ON_WINDOWS, reason=NO_POSIX_SIGNALS)
#: For tests that expect this machine's kind: Linux x86-64, with the HTP emulator.
EMULATOR_HOST = pytest.mark.skipif(not QNN_EMULATOR, reason=NO_EMULATOR)


# --- no network ---------------------------------------------------------------------------------


@functools.cache
def _refusing_socket() -> socket.socket:
    """A TCP port on 127.0.0.1 that is bound for as long as this process lives and never
    listens: a connection to it is refused at once, and no other server can take it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


def offline_hub() -> dict[str, str]:
    """Environment in which official checkpoints cannot be downloaded, on any machine, with or
    without network: ``HF_ENDPOINT`` (where they come from) at a port that refuses."""
    return {"HF_ENDPOINT": f"http://127.0.0.1:{_refusing_socket().getsockname()[1]}"}


#: The cache folder this pytest process made (None where it was given one: an xdist worker
#: inherits its controller's), removed when the session ends.
_session_cache: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    # Nothing a test runs writes into the user's cache (exports, step times): a test that needs
    # a cache of its own still names one.
    global _session_cache
    if "EDGEDEPTH_CACHE" not in os.environ:
        _session_cache = tempfile.mkdtemp(prefix="edgedepth-test-cache-")
        os.environ["EDGEDEPTH_CACHE"] = _session_cache
    # Nothing a test runs reaches Hugging Face: a test that needs a download serves it itself
    # (a mirror on 127.0.0.1); the tests that assume no network also say so with offline_hub().
    os.environ.update(offline_hub())


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    no_emulator = pytest.mark.skip(reason=NO_EMULATOR)
    for item in items:
        if item.get_closest_marker("qnn") and not QNN_EMULATOR:
            item.add_marker(no_emulator)
        needs = set(_module_needs(Path(item.path)))
        function = getattr(item, "function", None)
        if function is not None:
            source = textwrap.dedent(inspect.getsource(function))
            needs |= {IMPORT_MARKERS[n.split(".")[0]] for n in _imported(ast.parse(source))
                      if n.split(".")[0] in IMPORT_MARKERS}  # fmt: skip
        for marker in sorted(needs):
            item.add_marker(marker)


def run_edgedepth(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a subprocess: real exit codes, real stderr (packages made
    unimportable in it: ``env=blocked_modules(...)``)."""
    return subprocess.run(
        [sys.executable, "-m", "edgedepth", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line a command printed on stderr (where its one-line error goes)."""
    return result.stderr.strip().splitlines()[-1]


def killed_run(config: Path, frames_dir: Path, frames: int) -> int:
    """Start ``edgedepth run --config config`` and SIGKILL it once ``frames_dir`` holds
    ``frames`` .npy files (a crash mid-recording); returns how many it wrote."""
    import time

    process = subprocess.Popen([sys.executable, "-m", "edgedepth", "run", "--config", str(config)])
    deadline = time.monotonic() + 60
    while len(list(frames_dir.glob("*.npy"))) < frames and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    return len(list(frames_dir.glob("*.npy")))


def blocked_modules(folder: Path, *names: str) -> dict[str, str]:
    """Environment for a subprocess in which importing any of ``names`` fails as on an install
    without them (Windows on Arm has no torch or OpenCV wheels); each attempt is recorded in
    ``folder/attempts``, so a test can show they were never even tried."""
    folder.mkdir(parents=True, exist_ok=True)
    attempts = folder / "attempts"
    for name in names:
        (folder / f"{name}.py").write_text(
            f"with open({str(attempts)!r}, 'a') as record:\n"
            f"    record.write({name!r} + '\\n')\n"
            f"raise ImportError('{name} is not installed here')\n"
        )
    return {"PYTHONPATH": str(folder)}


def synthetic_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small synthetic → sleepy → npy pipeline."""
    config: dict[str, Any] = {
        "plugins": [SLEEPY],
        "source": {"type": "synthetic", "frames": 12, "width": 64, "height": 48},
        "backend": {"type": "sleepy"},
        "sinks": [{"type": "npy", "dir": "out"}],
    }
    config.update(overrides)
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(config: dict[str, Any], name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on a tmpfs of 256 KiB, to fill up for real (needs root, as in CI)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here ({mounted.stderr.strip()})"
        if os.environ.get("CI"):  # .ci/run runs as root: a full disk is tested there
            pytest.fail(reason)
        pytest.skip(f"{reason}; CI runs as root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for servers a test starts, or to be
    refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: The client must reach the AI Hub fake directly, whatever proxy this machine configures.
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_PROXY.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def hub(request, tmp_path, monkeypatch, no_proxy):
    """The AI Hub fake (tests/aihub_fake.py) on 127.0.0.1, and the real qai-hub client configured
    for it (as `qai-hub configure` would). Files move through S3 credentials, as 0.56 asks;
    ``@pytest.mark.parametrize("hub", ["url"], indirect=True)`` for pre-signed URLs."""
    from edgedepth.deploy import aihub
    from tests.aihub_fake import FakeAIHub

    (tmp_path / "service").mkdir()
    with FakeAIHub(tmp_path / "service", transfer=getattr(request, "param", "s3")) as fake:
        ini = fake.write_client_ini(tmp_path / "client.ini")
        monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
        for name, value in fake.client_environment(tmp_path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(aihub, "POLL_SECONDS", 0.05)
        yield fake
