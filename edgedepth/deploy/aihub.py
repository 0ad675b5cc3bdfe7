"""Compile, profile and run through Qualcomm AI Hub (``qai-hub``): the model folder from
``edgedepth deploy export`` goes up, a QNN artifact comes back into the output folder with the
device's latency, memory and accuracy against the local CPU output in its manifest.

The client config is checked before anything is uploaded (never printing the token), and the
service is probed first with one request through ``requests``, the client's own HTTP stack, so
the probe takes the route the client will (HTTPS_PROXY, ALL_PROXY, NO_PROXY, SOCKS, the Windows
proxy settings) but fails within seconds: the client alone retries an unreachable service for
about a minute before it gives up. A compile job for a QNN target asks for the QAIRT version of
the QNN bundled in the local onnxruntime-qnn (or the newest older one AI Hub offers): QNN loads
context binaries from the same or an older SDK only. Files move the way the service offers
(S3 credentials through botocore, or pre-signed URLs); any failure on the way is one line.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shlex
import shutil
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgedepth.api.errors import EdgedepthError
from edgedepth.deploy.artifact import Feeds
from edgedepth.engine.progress import long_call
from edgedepth.runtime.accuracy import compare_depth, format_comparison
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.model_file import is_context_model
from edgedepth.runtime.onnx_backend import DepthModel
from edgedepth.runtime.qnn import check_context_version, qnn_versions, version_tuple
from edgedepth.system.aihub_config import check_credentials
from edgedepth.system.network import unreachable

log = logging.getLogger("edgedepth")

#: What AI Hub compiles an ONNX model to (``--target_runtime``).
TARGET_RUNTIMES = ("precompiled_qnn_onnx", "qnn_context_binary", "onnx", "tflite")
#: The targets built with the QAIRT SDK, which ``--qairt_version`` selects (onnx and tflite
#: models are not).
QAIRT_TARGETS = ("precompiled_qnn_onnx", "qnn_context_binary")
#: Seconds between status polls while waiting for a job.
POLL_SECONDS = 5.0


def _hub() -> Any:
    try:
        import qai_hub
    except ImportError:
        raise EdgedepthError("AI Hub needs the client: pip install 'edgedepth[hub]'") from None
    return qai_hub


def open_client() -> Any:
    """A ``qai_hub.Client`` reading the same client.ini as :func:`check_credentials` (a fresh
    one: the module-level client keeps the first config it read)."""
    return _hub().Client()


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """The client's errors (multi-line boxes, tracebacks from requests, botocore's S3 transfer
    errors) as one line."""
    hub = _hub()
    import botocore.exceptions
    import requests
    import s3transfer.exceptions

    transfer_errors = (
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        s3transfer.exceptions.RetriesExceededError,
        requests.RequestException,
    )
    try:
        yield
    except (hub.client.Error, hub.public_rest_api.APIException, ValueError) as exc:
        raise EdgedepthError(f"AI Hub {what}: {_one_line(exc)}") from None
    except transfer_errors as exc:
        raise EdgedepthError(f"AI Hub {what}: transfer failed: {_one_line(exc)}") from None


def _one_line(error: Exception) -> str:
    lines = (line.strip(" |│┌┐└┘─") for line in str(error).splitlines())
    return " ".join(line for line in lines if line) or type(error).__name__


# --- configuration and network -------------------------------------------------------------------


def check_reachable(api_url: str, timeout: float = 10.0) -> None:
    """Fail fast (within ``timeout``, DNS included) when the service cannot be reached, by the
    route the client's ``requests`` would take."""
    reason = unreachable(api_url, timeout, client="requests")
    if reason is not None:
        raise EdgedepthError(f"cannot reach AI Hub at {reason}")


# --- jobs ----------------------------------------------------------------------------------------


def wait_for(job: Any, what: str) -> Any:
    """Poll a job until it finishes, printing its state changes (above the bar that shows the
    time against the last such job's, in a terminal); the final status."""
    last = None
    print(f"{what}: job {job.job_id} {job.url}", file=sys.stderr)
    with long_call(f"AI Hub: waiting for the {what} job", f"aihub-{what}", what) as call:
        while True:
            with hub_errors(f"{what} job {job.job_id}"):
                status = job.get_status()
            if status.code != last:
                tqdm.write(f"{what}: {status.code.lower()}", file=sys.stderr)
                call.status(status.code.lower())
                last = status.code
            if status.finished:
                if not status.success:
                    raise EdgedepthError(
                        f"AI Hub {what} job {job.job_id} failed: {status.message} ({job.url})"
                    )
                return status
            time.sleep(POLL_SECONDS)


def option_value(options: str, name: str) -> str | None:
    """The value of ``--name`` in a job's option string, given as ``--name value`` or
    ``--name=value`` (the form qai-hub-models' docs use); the last one counts, as in argparse."""
    words = shlex.split(options)
    flag = f"--{name}"
    value = None
    for position, word in enumerate(words):
        if word == flag and position + 1 < len(words):
            value = words[position + 1]
        elif word.startswith(f"{flag}="):
            value = word.removeprefix(f"{flag}=")
    return value


def choose_qairt_version(client: Any, compile_options: str) -> dict[str, Any]:
    """The QAIRT version to compile with: the user's ``--qairt_version``, else the newest one AI
    Hub offers that is no newer than the QNN in the local onnxruntime-qnn (its major.minor when
    the list is unavailable). Returns what goes into the manifest."""
    package, local = qnn_versions()
    chosen: dict[str, Any] = {"onnxruntime_qnn": package, "qnn_local": local}
    requested = option_value(compile_options, "qairt_version")
    if requested:
        chosen["qairt_version"] = requested
        if local and requested[:1].isdigit() and version_tuple(requested) > version_tuple(local):
            log.warning(
                "aihub: --qairt_version %s is newer than QNN %s in onnxruntime-qnn %s: the "
                "artifact will not load on this machine",
                requested,
                local,
                package,
            )
        return chosen
    if local is None:
        log.info("aihub: onnxruntime-qnn is not installed here: compiling with AI Hub's default")
        chosen["qairt_version"] = None
        return chosen
    newest = version_tuple(local)[:2]
    offered: list[str] = []
    with contextlib.suppress(Exception):  # an old client or a transient error: use major.minor
        offered = [
            framework.api_version
            for framework in client.get_frameworks()
            if framework.name.upper() in ("QAIRT", "QNN")
        ]
    usable = [v for v in offered if v[:1].isdigit() and version_tuple(v)[:2] <= newest]
    if offered and not usable:
        raise EdgedepthError(
            f"AI Hub offers QAIRT {', '.join(offered)}, all newer than QNN {local} in "
            f"onnxruntime-qnn {package}: a binary from them would not load here. Upgrade "
            "onnxruntime-qnn (pip install -U 'edgedepth[qnn]'), or force one with "
            "--compile-options '--qairt_version X'"
        )
    chosen["qairt_version"] = (
        max(usable, key=version_tuple) if usable else ".".join(map(str, newest))
    )
    chosen["qairt_offered"] = offered
    return chosen


def unpack_artifact(downloaded: Path, out_dir: Path, target_runtime: str) -> str | None:
    """Put what the client downloaded into ``out_dir``; the path (relative, POSIX) of the model
    ``edgedepth run`` should load, or None for targets it cannot run.

    A ``precompiled_qnn_onnx`` target arrives as ``<name>.onnx.zip`` holding
    ``job_<id>_optimized_onnx/model.onnx`` (the EPContext model) and ``model.bin`` (the context
    binary it names); the folder is kept as AI Hub made it."""
    if downloaded.is_dir():  # an extracted directory model
        files = [downloaded / name for name in os.listdir(downloaded)]
        target = out_dir / downloaded.name
        shutil.move(str(downloaded), target)
        extracted = [target / file.name for file in files]
    elif zipfile.is_zipfile(downloaded):
        with zipfile.ZipFile(downloaded) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            archive.extractall(out_dir)
        downloaded.unlink()
        extracted = [out_dir / name for name in names]
    else:
        target = out_dir / downloaded.name
        if downloaded.resolve() != target.resolve():
            shutil.move(str(downloaded), target)
        extracted = [target]
    onnx_files = [path for path in extracted if path.suffix == ".onnx"]
    if target_runtime == "precompiled_qnn_onnx":
        context_models = [path for path in onnx_files if is_context_model(path)]
        if len(context_models) != 1:
            found = ", ".join(sorted(p.relative_to(out_dir).as_posix() for p in extracted))
            raise EdgedepthError(
                f"AI Hub artifact {downloaded.name}: expected one EPContext model, found {found}"
            )
        return context_models[0].relative_to(out_dir).as_posix()
    if target_runtime == "onnx" and len(onnx_files) == 1:
        return onnx_files[0].relative_to(out_dir).as_posix()
    return None


def download_artifact(compile_job: Any, out_dir: Path, target_runtime: str) -> str | None:
    """Download a finished compile job's target model into ``out_dir`` (see
    :func:`unpack_artifact`); shared by ``deploy compile --aihub`` and ``deploy status``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with hub_errors(f"compile job {compile_job.job_id}"):
        downloaded = compile_job.download_target_model(str(out_dir / "aihub_target"))
    if downloaded is None:
        raise EdgedepthError(f"AI Hub compile job {compile_job.job_id} has no target model")
    run_model = unpack_artifact(Path(downloaded), out_dir, target_runtime)
    if run_model is None:
        print(
            f"artifact: {target_runtime} is not runnable by `edgedepth run` "
            "(use --target-runtime precompiled_qnn_onnx for that)",
            file=sys.stderr,
        )
    return run_model


def profile_summary(profile: dict[str, Any], job: Any) -> dict[str, Any]:
    """Latency (ms), peak memory (MB) and where the layers ran, from a profile dictionary."""
    summary = (profile or {}).get("execution_summary") or {}
    if summary.get("estimated_inference_time") is None:
        raise EdgedepthError(
            f"AI Hub job {job.job_id} returned no profile (was it submitted with profiling?) "
            f"({job.url})"
        )
    peak = summary.get("inference_memory_peak_range") or (None, None)
    units = Counter(layer.get("compute_unit", "?") for layer in profile.get("execution_detail", []))
    return {
        "latency_ms": summary["estimated_inference_time"] / 1000.0,
        "peak_memory_mb": [None if b is None else round(b / 2**20, 1) for b in peak],
        "layers_by_compute_unit": dict(units),
    }


def profiles_in_inference_jobs(client: Any) -> bool:
    """qai-hub >= 0.56: inference jobs profile (``profile=True``) and ``submit_profile_job`` is
    deprecated; older clients need a profile job and an inference job."""
    return "profile" in inspect.signature(client.submit_inference_job).parameters


def run_on_device(
    client: Any,
    target_model: Any,
    device: Any,
    feeds: list[Feeds],
    profile_options: str,
    save: Any,
    results: dict[str, Any],
) -> list[dict[str, np.ndarray]]:
    """Profile and run the compiled model on the device; fills ``results["profile"]`` and
    ``results["inference"]``; the device's outputs by name, for each frame. One job where the
    client allows it."""
    inputs = {name: [feed[name] for feed in feeds] for name in feeds[0]}
    if profiles_in_inference_jobs(client):
        with hub_errors("inference"):
            job = client.submit_inference_job(
                model=target_model, device=device, inputs=inputs, options=profile_options,
                profile=True,
            )  # fmt: skip
        results["inference"] = {"job_id": job.job_id, "url": job.url, "profiled": True}
        results["profile"] = {"job_id": job.job_id, "url": job.url}
        save()
        wait_for(job, "inference")
        profile_job = inference_job = job
    else:
        with hub_errors("profile"):
            profile_job = client.submit_profile_job(
                model=target_model, device=device, options=profile_options
            )
        results["profile"] = {"job_id": profile_job.job_id, "url": profile_job.url}
        save()
        wait_for(profile_job, "profile")
        version = option_value(profile_options, "qairt_version")
        options = f"--qairt_version {version}" if version else ""
        with hub_errors("inference"):
            inference_job = client.submit_inference_job(
                model=target_model, device=device, inputs=inputs, options=options
            )
        results["inference"] = {"job_id": inference_job.job_id, "url": inference_job.url}
        save()
        wait_for(inference_job, "inference")
    with hub_errors(f"profile of job {profile_job.job_id}"):
        profile = profile_job.download_profile()
    results["profile"].update(profile_summary(profile, profile_job))
    save()
    with hub_errors(f"outputs of job {inference_job.job_id}"):
        outputs = inference_job.download_output_data()
    if not outputs:
        raise EdgedepthError(f"AI Hub inference job {inference_job.job_id} returned no outputs")
    return [dict(zip(outputs, frame, strict=True)) for frame in zip(*outputs.values(), strict=True)]


def compile_on_aihub(
    model_dir: Path,
    out_dir: Path,
    *,
    device: str,
    target_runtime: str = "precompiled_qnn_onnx",
    compile_options: str = "",
    profile_options: str = "--max_profiler_iterations 20",
    model: DepthModel,
    feeds: list[Feeds],
    reference_depth: list[np.ndarray],
    client: Any = None,
) -> dict[str, Any]:
    """Compile → download → profile and inference (one job on qai-hub >= 0.56) → compare.
    Results go into ``out_dir/manifest.json`` under ``aihub`` after every step, so an
    interrupted run keeps its job ids (``edgedepth deploy status JOB_ID --out DIR`` resumes)."""
    if target_runtime not in TARGET_RUNTIMES:
        raise EdgedepthError(f"--target-runtime {target_runtime!r}: one of {TARGET_RUNTIMES}")
    hub = _hub()
    settings = check_credentials()
    check_reachable(settings.api_url)
    client = client or open_client()
    manifest = Manifest.read(model_dir) or Manifest()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.reference_model = _keep_reference(model_dir, out_dir, manifest)
    results: dict[str, Any] = {"device": device, "target_runtime": target_runtime}

    def save() -> None:
        manifest.aihub = results
        manifest.write(out_dir)

    version_option = ""
    if target_runtime in QAIRT_TARGETS:
        qairt = choose_qairt_version(client, compile_options)
        results.update(qairt)
        if qairt["qairt_version"] and not option_value(compile_options, "qairt_version"):
            version_option = f"--qairt_version {qairt['qairt_version']}"
    target = hub.Device(device)
    options = " ".join(
        part for part in (f"--target_runtime {target_runtime}", version_option, compile_options)
        if part
    )  # fmt: skip
    with hub_errors("compile"):
        compile_job = client.submit_compile_job(
            model=str(model_dir / "model.onnx"),
            device=target,
            name=f"edgedepth {manifest.backend or 'model'} {_depth_kind(manifest)}",
            input_specs={t.name: (tuple(t.shape), t.dtype) for t in manifest.inputs},
            options=options,
        )
    results["compile"] = {"job_id": compile_job.job_id, "url": compile_job.url, "options": options}
    save()
    wait_for(compile_job, "compile")
    run_model = download_artifact(compile_job, out_dir, target_runtime)
    if run_model is not None:
        manifest.run_model = run_model
    results["artifact"] = run_model
    with hub_errors(f"compile job {compile_job.job_id}"):
        target_model = compile_job.get_target_model()
        results["target_qairt"] = _qairt_of(target_model)
    save()
    if run_model is not None and is_context_model(out_dir / run_model):
        try:
            check_context_version(out_dir / run_model)
        except EdgedepthError as newer:
            log.warning("aihub: %s", newer)

    device_options = " ".join(part for part in (profile_options, version_option) if part)
    device_outputs = run_on_device(
        client, target_model, target, feeds, device_options, save, results
    )
    device_depth = [model.depth(outputs) for outputs in device_outputs]
    results["inference"]["accuracy_vs_cpu"] = compare_depth(device_depth, reference_depth)
    save()

    profile = results["profile"]
    peak = profile["peak_memory_mb"]
    print(
        f"{device}: {profile['latency_ms']:.2f} ms on device, peak memory {peak[0]}–{peak[1]} MB, "
        f"layers {profile['layers_by_compute_unit']}"
    )
    print(format_comparison("device vs local CPU", results["inference"]["accuracy_vs_cpu"]))
    if run_model is not None:
        print(f"artifact: {out_dir / run_model} (QAIRT {results['target_qairt'] or '?'})")
    return results


def _depth_kind(manifest: Manifest) -> str:
    return manifest.depth_kind.value if manifest.depth_kind else "depth"


def _keep_reference(model_dir: Path, out_dir: Path, manifest: Manifest) -> str:
    """The float model stays reachable from ``out_dir`` (runtime auto falls back to it on a
    machine without an NPU): its path relative to ``out_dir``, copied in if it is elsewhere."""
    source = model_dir / (manifest.reference_model or "model.onnx")
    try:
        return source.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        shutil.copyfile(source, out_dir / "model.onnx")
        return "model.onnx"


def _qairt_of(model: Any) -> str | None:
    """The QAIRT SDK version AI Hub records in a compiled model's metadata."""
    hub = _hub()
    try:
        metadata = model.metadata
    except Exception:  # older clients and services do not record it
        return None
    return metadata.get(hub.client.ModelMetadataKey.QAIRT_SDK_VERSION)


def job_status(job_id: str, out_dir: Path | None = None, client: Any = None) -> dict[str, Any]:
    """Print a job's state; a finished compile job's artifact is downloaded into ``out_dir``
    exactly as ``deploy compile --aihub`` does."""
    settings = check_credentials()
    check_reachable(settings.api_url)
    client = client or open_client()
    with hub_errors(f"job {job_id}"):
        job = client.get_job(job_id)
        status = job.get_status()
    print(f"job {job_id} ({type(job).__name__}): {status.code.lower()} {status.message or ''}")
    result: dict[str, Any] = {"job_id": job_id, "state": status.code}
    if out_dir is not None and status.success and hasattr(job, "download_target_model"):
        target_runtime = option_value(str(getattr(job, "options", "")), "target_runtime")
        target_runtime = target_runtime or "precompiled_qnn_onnx"
        result["artifact"] = download_artifact(job, out_dir, target_runtime)
        manifest = Manifest.read(out_dir) or Manifest()
        if result["artifact"] is not None:
            manifest.run_model = result["artifact"]
            print(f"artifact: {out_dir / result['artifact']}")
        manifest.write(out_dir)
    return result
