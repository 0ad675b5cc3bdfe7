"""Compile, profile and run through Qualcomm AI Hub (``qai-hub``): the model folder from
``edgedepth deploy export`` goes up, a QNN artifact comes back into the output folder with the
device's latency, memory and accuracy against the local CPU output in its manifest.

The token is checked before anything is uploaded, and the service is probed with a short
connection timeout first: the client alone retries for about 45 s before it gives up.
"""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from edgedepth.deploy.artifact import write_manifest
from edgedepth.deploy.compare import compare_depth, format_comparison
from edgedepth.depth_graph import INPUT_NAME, read_manifest
from edgedepth.errors import EdgedepthError

TOKEN_HELP = (
    "run `qai-hub configure --api_token YOUR_TOKEN` (token: https://workbench.aihub.qualcomm.com "
    "→ Account → Settings) or point QAIHUB_CLIENT_INI at a client.ini"
)
#: What AI Hub compiles an ONNX model to (``--target_runtime``).
TARGET_RUNTIMES = ("precompiled_qnn_onnx", "qnn_context_binary", "onnx", "tflite")
#: Seconds between status polls while waiting for a job.
POLL_SECONDS = 5.0


def _hub() -> Any:
    try:
        import qai_hub
    except ImportError:
        raise EdgedepthError("AI Hub needs the client: pip install 'edgedepth[hub]'") from None
    return qai_hub


def client_config_path() -> Path:
    """Where qai-hub reads its token: $QAIHUB_CLIENT_INI or ~/.qai_hub/client.ini."""
    return Path(os.environ.get("QAIHUB_CLIENT_INI", "~/.qai_hub/client.ini")).expanduser()


def check_credentials() -> str:
    """The configured API URL; a one-line error when no token is configured."""
    path = client_config_path()
    config = configparser.ConfigParser()
    try:
        found = config.read(path)
    except configparser.Error as exc:
        raise EdgedepthError(f"{path}: not a valid client.ini ({exc}); {TOKEN_HELP}") from None
    if not found:
        raise EdgedepthError(f"no Qualcomm AI Hub token ({path} not found): {TOKEN_HELP}")
    api = config["api"] if config.has_section("api") else {}
    if not api.get("api_token") or not api.get("api_url"):
        raise EdgedepthError(f"{path}: no api_token/api_url in [api]: {TOKEN_HELP}")
    return api["api_url"]


def check_reachable(api_url: str, timeout: float = 10.0) -> None:
    """Fail fast (within ``timeout``, DNS included) when the service cannot be reached."""
    parsed = urlparse(api_url)
    host = parsed.hostname or api_url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            failure.append(exc)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    if probe.is_alive():
        raise EdgedepthError(f"cannot reach AI Hub at {host}:{port} (no answer in {timeout:g} s)")
    if failure:
        reason = getattr(failure[0], "strerror", None) or failure[0]
        raise EdgedepthError(f"cannot reach AI Hub at {host}:{port} ({reason})")


def wait_for(job: Any, what: str) -> Any:
    """Poll a job until it finishes, printing its state changes; the final status."""
    last = None
    print(f"{what}: job {job.job_id} {job.url}", file=sys.stderr)
    while True:
        status = job.get_status()
        if status.code != last:
            print(f"{what}: {status.code.lower()}", file=sys.stderr, flush=True)
            last = status.code
        if status.finished:
            if not status.success:
                raise EdgedepthError(
                    f"AI Hub {what} job {job.job_id} failed: {status.message} ({job.url})"
                )
            return status
        time.sleep(POLL_SECONDS)


def unpack_artifact(downloaded: Path, out_dir: Path, target_runtime: str) -> str:
    """Put the compiled model in ``out_dir``; the name ``edgedepth run`` should load (or the
    binary's name for targets it cannot run)."""
    if downloaded.suffix == ".zip":
        with zipfile.ZipFile(downloaded) as archive:
            archive.extractall(out_dir)
        downloaded.unlink()
    elif downloaded.is_dir():
        for item in downloaded.iterdir():
            shutil.move(str(item), out_dir / item.name)
        downloaded.rmdir()
    onnx_files = sorted(p for p in out_dir.rglob("*.onnx") if p.name != "model.onnx")
    if target_runtime in ("precompiled_qnn_onnx", "onnx") and onnx_files:
        return str(onnx_files[0].relative_to(out_dir))
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != "manifest.json")
    return str(files[0].relative_to(out_dir)) if files else downloaded.name


def profile_summary(profile: dict[str, Any]) -> dict[str, Any]:
    """Latency (ms), peak memory (MB) and where the layers ran, from a profile dictionary."""
    summary = profile.get("execution_summary", {})
    peak = summary.get("inference_memory_peak_range") or (None, None)
    units = Counter(layer.get("compute_unit", "?") for layer in profile.get("execution_detail", []))
    return {
        "latency_ms": summary["estimated_inference_time"] / 1000.0,
        "peak_memory_mb": [None if b is None else round(b / 2**20, 1) for b in peak],
        "layers_by_compute_unit": dict(units),
    }


def compile_on_aihub(
    model_dir: Path,
    out_dir: Path,
    *,
    device: str,
    target_runtime: str = "precompiled_qnn_onnx",
    compile_options: str = "",
    profile_options: str = "--max_profiler_iterations 20",
    frames: list[np.ndarray],
    reference_outputs: list[np.ndarray],
    hub: Any = None,
) -> dict[str, Any]:
    """Compile → download → profile → inference → compare. Results go into
    ``out_dir/manifest.json`` under ``aihub`` after every step, so an interrupted run keeps
    its job ids (``edgedepth deploy status JOB_ID --out DIR`` resumes)."""
    if target_runtime not in TARGET_RUNTIMES:
        raise EdgedepthError(f"--target-runtime {target_runtime!r}: one of {TARGET_RUNTIMES}")
    hub = hub or _hub()
    check_reachable(check_credentials())
    manifest = read_manifest(model_dir)
    (graph_input,) = manifest["inputs"]
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": device, "target_runtime": target_runtime}

    def save() -> None:
        write_manifest(out_dir, {**manifest, "aihub": results})

    target = hub.Device(device)
    options = f"--target_runtime {target_runtime} {compile_options}".strip()
    compile_job = hub.submit_compile_job(
        model=str(model_dir / "model.onnx"),
        device=target,
        name=f"edgedepth {manifest['model']['encoder']} {manifest['depth_kind']}",
        input_specs={INPUT_NAME: (tuple(graph_input["shape"]), "float32")},
        options=options,
    )
    results["compile"] = {"job_id": compile_job.job_id, "url": compile_job.url, "options": options}
    save()
    wait_for(compile_job, "compile")
    run_model = download_artifact(compile_job, out_dir, target_runtime)
    manifest["run_model"] = run_model
    results["artifact"] = run_model
    save()

    target_model = compile_job.get_target_model()
    profile_job = hub.submit_profile_job(model=target_model, device=target, options=profile_options)
    results["profile"] = {"job_id": profile_job.job_id, "url": profile_job.url}
    save()
    wait_for(profile_job, "profile")
    results["profile"].update(profile_summary(profile_job.download_profile()))
    save()

    inference_job = hub.submit_inference_job(
        model=target_model, device=target, inputs={INPUT_NAME: list(frames)}
    )
    results["inference"] = {"job_id": inference_job.job_id, "url": inference_job.url}
    save()
    wait_for(inference_job, "inference")
    outputs = inference_job.download_output_data()
    device_outputs = next(iter(outputs.values()))
    results["inference"]["accuracy_vs_cpu"] = compare_depth(device_outputs, reference_outputs)
    save()

    profile = results["profile"]
    peak = profile["peak_memory_mb"]
    print(
        f"{device}: {profile['latency_ms']:.2f} ms on device, peak memory {peak[0]}–{peak[1]} MB, "
        f"layers {profile['layers_by_compute_unit']}"
    )
    print(format_comparison("device vs local CPU", results["inference"]["accuracy_vs_cpu"]))
    print(f"artifact: {out_dir / run_model}")
    return results


def download_artifact(compile_job: Any, out_dir: Path, target_runtime: str) -> str:
    downloaded = compile_job.download_target_model(str(out_dir / "aihub_target"))
    if downloaded is None:
        raise EdgedepthError(f"AI Hub compile job {compile_job.job_id} has no target model")
    return unpack_artifact(Path(downloaded), out_dir, target_runtime)


def job_status(job_id: str, out_dir: Path | None = None, hub: Any = None) -> dict[str, Any]:
    """Print a job's state; a finished compile job's artifact is downloaded into ``out_dir``."""
    hub = hub or _hub()
    check_reachable(check_credentials())
    try:
        job = hub.get_job(job_id)
    except Exception as exc:
        raise EdgedepthError(f"AI Hub job {job_id}: {exc}") from None
    status = job.get_status()
    print(f"job {job_id} ({type(job).__name__}): {status.code.lower()} {status.message or ''}")
    result = {"job_id": job_id, "state": status.code}
    if out_dir is not None and status.success and hasattr(job, "download_target_model"):
        out_dir.mkdir(parents=True, exist_ok=True)
        target_runtime = next(
            (r for r in TARGET_RUNTIMES if r in str(getattr(job, "options", ""))),
            "precompiled_qnn_onnx",
        )
        result["artifact"] = download_artifact(job, out_dir, target_runtime)
        manifest = read_manifest(out_dir)
        write_manifest(out_dir, {**manifest, "run_model": result["artifact"]})
        print(f"artifact: {out_dir / result['artifact']}")
    return result
