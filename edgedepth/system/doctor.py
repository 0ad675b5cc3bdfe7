"""``edgedepth doctor``: what works on this machine, for the user and for bug reports.

The report covers the OS and CPU, the Python build (an x64 Python emulated on Arm64 Windows never
sees the NPU), the versions that matter (edgedepth, ONNX Runtime, onnxruntime-qnn and the QNN SDK
it bundles), the execution-provider devices ONNX Runtime finds (a real NPU or Qualcomm's HTP
emulator, the chip), the AI Hub configuration (never the token), cache space, OpenCV/torch and
the cameras. ``verify`` compiles a small ViT-like model for the NPU (or the emulator) in a child
process and checks one frame against the CPU. Every value is in :func:`collect` (``--json``);
:func:`format_report` ends with a one-line verdict.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.system.host import host_info

#: A small model with a ViT depth model's operators (tests/tools/make_doctor_probe.py).
PROBE_MODEL = Path(__file__).with_name("doctor_probe.onnx")
#: fp16 on the HTP against fp32 on the CPU: measured 0.3% on the emulator.
VERIFY_TOLERANCE = 1e-2
#: Distributions whose versions the report lists (None: not installed).
PACKAGES = (
    "onnxruntime", "onnxruntime-qnn", "qai-hub", "av", "numpy", "pydantic", "pyyaml",
    "opencv-python", "opencv-python-headless", "opencv-contrib-python", "torch",
)  # fmt: skip


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _packages() -> dict[str, Any]:
    versions = {name: _version(name) for name in PACKAGES}
    opencv = [versions.pop(n) for n in list(versions) if n.startswith("opencv")]
    versions["opencv"] = next((v for v in opencv if v), None)
    try:
        import av

        versions["ffmpeg"] = getattr(av, "ffmpeg_version_info", None)
    except ImportError:
        versions["ffmpeg"] = None
    from edgedepth.runtime.qnn import qnn_versions

    versions["qnn_sdk"] = qnn_versions()[1]
    return versions


def _ep_devices() -> list[dict[str, Any]]:
    """Every (execution provider, device) pair ONNX Runtime offers, QNN registered first."""
    import onnxruntime as ort

    return [
        {
            "ep": device.ep_name,
            "ep_vendor": device.ep_vendor,
            "device_type": device.device.type.name,
            "vendor": device.device.vendor,
            "vendor_id": device.device.vendor_id,
            "device_id": device.device.device_id,
            "metadata": {str(k): str(v) for k, v in dict(device.device.metadata).items()},
            "ep_metadata": {str(k): str(v) for k, v in dict(device.ep_metadata).items()},
        }
        for device in ort.get_ep_devices()
    ]


def _qnn() -> dict[str, Any]:
    from edgedepth.runtime.options import QNN_PRESETS
    from edgedepth.runtime.qnn import htp_backend_path, qnn_target

    try:
        target = qnn_target()
    except EdgedepthError as exc:
        return {"available": False, "error": str(exc), "npu": False, "target": None}
    backend = Path(htp_backend_path())
    stubs = sorted(backend.parent.glob("*QnnHtpV*Stub*"))  # Windows/Android: the HTPs it drives
    soc_model, htp_arch = QNN_PRESETS.get(target.preset or "", (None, None))
    return {
        "available": True,
        "error": None,
        "npu": target.npu,
        "target": "npu" if target.npu else "emulator",
        "description": target.description,
        "chip": target.preset,
        "soc_model": soc_model,
        "htp_arch": htp_arch,
        "backend_path": str(backend),
        "backend_path_exists": backend.is_file(),
        "htp_versions_in_package": [stub.name.split("Stub")[0][-3:] for stub in stubs],
    }


def _aihub() -> dict[str, Any]:
    from edgedepth.system.aihub_config import check_credentials, client_config_path
    from edgedepth.system.network import requests_proxy_for

    path = client_config_path()
    found: dict[str, Any] = {
        "client": _version("qai-hub"),
        "config": str(path),
        "config_found": path.is_file(),
        "api_url": None,
        "web_url": None,
        "token_present": False,
        "problem": None,
        "proxy": None,
    }
    try:
        settings = check_credentials()
    except EdgedepthError as exc:
        found["problem"] = str(exc)  # never holds the token
        return found
    try:  # the route of the client's HTTP stack
        proxy = requests_proxy_for(settings.api_url)
    except ImportError:  # no client, no requests
        proxy = None
    if proxy:  # without the user:password a proxy URL may hold
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        proxy = f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    found.update(
        api_url=settings.api_url, web_url=settings.web_url, token_present=True, proxy=proxy
    )
    return found


def _free_space(path: Path) -> dict[str, Any]:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    return {"path": str(path), "exists": path.exists(), "free_gb": round(usage.free / 1e9, 1)}


def _caches() -> dict[str, Any]:
    from edgedepth.engine.config import default_cache_dir

    cache = default_cache_dir()
    return {
        "edgedepth": _free_space(cache),
        "temp": _free_space(Path(tempfile.gettempdir())),
    }


def _cameras() -> list[dict[str, Any]]:
    from edgedepth.media.cameras import list_all

    return [listing.as_dict() for listing in list_all()]


def verdict(report: dict[str, Any]) -> tuple[bool, str]:
    """(NPU ready?, one line saying so or why not)."""
    host, qnn = report["host"], report["qnn"]
    if host["unsupported_python"]:
        return False, f"NPU: not available because {host['unsupported_python']}"
    if host["note"] and host["emulated"]:
        return False, f"NPU: not available because {host['note']}"
    if not qnn["available"]:
        return False, f"NPU: not available because {qnn['error']}"
    if not qnn["npu"]:
        return False, (
            f"NPU: not available because the QNN EP offers only its {qnn['description']} "
            "(runtime qnn works here to check models, ~30 s per ViT-S frame; runtime auto uses "
            "the CPU)"
        )
    check = report.get("verify")
    if check is not None and not check.get("passed"):
        return False, f"NPU: found ({qnn['description']}) but --verify failed: {check['error']}"
    done = "verified" if check else "run `edgedepth doctor --verify` to compile a model on it"
    return True, f"NPU: ready ({qnn['description']}; {done})"


def collect(verify: bool = False) -> dict[str, Any]:
    """Everything ``edgedepth doctor`` reports, JSON-serialisable."""
    report: dict[str, Any] = {
        "edgedepth": edgedepth.__version__,
        "host": host_info().as_dict(),
        "packages": _packages(),
        "qnn": _qnn(),  # registers the QNN EP, so the device list below includes it
        "ep_devices": _ep_devices(),
        "aihub": _aihub(),
        "caches": _caches(),
        "cameras": _cameras(),
    }
    if verify:
        report["verify"] = run_verify()
    ready, line = verdict(report)
    report["verdict"] = {"npu_ready": ready, "message": line}
    return report


# --- --verify ------------------------------------------------------------------------------------


def run_verify(timeout: float = 600.0) -> dict[str, Any]:
    """:func:`verify_here` in a child process: a QNN driver that crashes takes the child, not
    the report."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgedepth.system.doctor", "--verify-here"],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"passed": False, "error": f"no answer in {timeout:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"verify"')]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"passed": False, "error": f"the check crashed (exit {done.returncode}): {last}"}
    return json.loads(lines[-1])["verify"]


def verify_here() -> dict[str, Any]:
    """Compile the probe model for the QNN device (writing and then loading an EPContext
    binary, as ``runtime: qnn`` does), run one frame on it and on the CPU, compare."""
    from edgedepth.runtime.options import QnnOptions
    from edgedepth.runtime.qnn import qnn_target
    from edgedepth.runtime.sessions import cpu_session, qnn_session

    result: dict[str, Any] = {"passed": False, "error": None}
    try:
        target = qnn_target()
        result["device"] = target.description
        result["npu"] = target.npu
        frame = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
        with tempfile.TemporaryDirectory(prefix="edgedepth-doctor-") as folder:
            context = Path(folder) / "probe_ctx.onnx"
            started = time.perf_counter()
            qnn_session(PROBE_MODEL, QnnOptions(), context)
            result["compile_seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            session = qnn_session(context, QnnOptions())
            result["load_seconds"] = round(time.perf_counter() - started, 3)
            result["qnn_ms"], on_qnn = _timed(session, frame)
        result["cpu_ms"], on_cpu = _timed(cpu_session(PROBE_MODEL), frame)
        error = float(np.linalg.norm(on_qnn - on_cpu) / max(np.linalg.norm(on_cpu), 1e-12))
        result["relative_error"] = round(error, 6)
        result["max_abs_error"] = round(float(np.abs(on_qnn - on_cpu).max()), 6)
        result["passed"] = bool(np.isfinite(on_qnn).all() and error < VERIFY_TOLERANCE)
        if not result["passed"]:
            result["error"] = f"relative error {error:.3g} vs the CPU (limit {VERIFY_TOLERANCE})"
    except EdgedepthError as exc:
        result["error"] = str(exc)
    return result


def _timed(session: Any, frame: np.ndarray, runs: int = 3) -> tuple[float, np.ndarray]:
    """(median ms of ``runs`` runs after a warm-up, the output)."""
    output = session.run(None, {"image": frame})[0]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {"image": frame})
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 2), output


# --- the human report ----------------------------------------------------------------------------


def _row(key: str, value: Any) -> str:
    return f"  {key + ':':<17}{value}"


def format_report(report: dict[str, Any]) -> str:
    """The report for people: sections of ``key: value`` lines, the verdict last."""
    from edgedepth.media.cameras import CameraListing, format_listings

    host, packages, qnn = report["host"], report["packages"], report["qnn"]
    python = f"{host['python_implementation']} {host['python_version']} ({host['python_arch']}"
    python += ", emulated)" if host["emulated"] else ", native)"
    lines = [
        f"edgedepth {report['edgedepth']}",
        _row("os", f"{host['os']} ({host['machine_arch']}, {host['cpu_count']} CPUs)"),
        _row("python", f"{python} {host['python_executable']}"),
    ]
    lines += [_row("warning", w) for w in (host["note"], host["unsupported_python"]) if w]
    lines.append("packages:")
    shown = ("onnxruntime", "onnxruntime-qnn", "qnn_sdk", "qai-hub", "av", "ffmpeg", "opencv",
             "torch")  # fmt: skip
    lines += [_row(name, packages.get(name) or "not installed") for name in shown]
    lines.append("QNN:")
    if qnn["available"]:
        chip = f" ({qnn['chip']}, soc_model {qnn['soc_model']}, v{qnn['htp_arch']})"
        lines.append(_row("device", qnn["description"] + (chip if qnn["chip"] else "")))
        lines.append(_row("kind", "a real NPU" if qnn["npu"] else "the emulator, not an NPU"))
        lines.append(_row("HTP library", qnn["backend_path"]))
        if qnn["htp_versions_in_package"]:
            lines.append(_row("HTP versions", ", ".join(qnn["htp_versions_in_package"])))
    else:
        lines.append(_row("unavailable", qnn["error"]))
    lines.append("execution providers:")
    for device in report["ep_devices"]:
        description = device["metadata"].get("Description", "")
        line = f"  {device['ep']:<24} {device['device_type']:<4} {device['vendor']} {description}"
        lines.append(line.rstrip())
    hub = report["aihub"]
    lines.append("AI Hub:")
    if hub["problem"]:
        lines.append(_row("not configured", hub["problem"]))
    else:
        lines.append(_row("api_url", f"{hub['api_url']} (token present)"))
        lines.append(_row("web_url", hub["web_url"]))
        if hub["proxy"]:
            lines.append(_row("proxy", hub["proxy"]))
    lines.append("caches:")
    for name, cache in report["caches"].items():
        lines.append(_row(name, f"{cache['path']} ({cache['free_gb']} GB free)"))
    lines.append("cameras:")
    listings = [CameraListing.from_dict(listing) for listing in report["cameras"]]
    lines += [f"  {line}" for line in format_listings(listings)]
    if "verify" in report:
        check = report["verify"]
        lines.append("verify:")
        if "relative_error" in check:
            lines.append(
                f"  {check['device']}: compile {check['compile_seconds']} s, load "
                f"{check['load_seconds']} s, {check['qnn_ms']} ms/frame (CPU {check['cpu_ms']} "
                f"ms), relative error {check['relative_error']:.2e} vs the CPU"
            )
        lines.append(f"  {'passed' if check['passed'] else 'FAILED: ' + str(check['error'])}")
    lines.append(report["verdict"]["message"])
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:] == ["--verify-here"]:
    print(json.dumps({"verify": verify_here()}))
