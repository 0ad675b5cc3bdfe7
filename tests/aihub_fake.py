"""Qualcomm AI Hub's REST API on 127.0.0.1, as much of it as edgedepth's calls make the installed
``qai_hub`` client use. The service cannot be reached from here; with this, the *real* client
code runs unchanged (point ``api_url`` of its client.ini at :attr:`FakeAIHub.url`): its uploads,
job polling, downloads, dataset (h5) and protobuf handling, deprecation warnings, errors.

Everything on the wire is the client's own: the URL layout of ``qai_hub.api_utils.api_url``,
the messages of ``qai_hub.public_api_pb2``, the h5 layout of
``qai_hub.util.dataset_entries_converters``. Files move the two ways the service offers:
pre-signed URLs on this server (``transfer="url"``), or, when the client asks with
``supports_s3_credentials=true`` as 0.56 does, short-lived S3 credentials for one object
(``transfer="s3"``, the default): the client's own botocore/s3transfer code then uploads and
downloads through a real S3-protocol server (moto) on 127.0.0.1, which botocore reaches through
its documented ``AWS_ENDPOINT_URL_S3`` setting (:meth:`FakeAIHub.client_environment`).

The compile job is real: the uploaded ONNX model is
compiled on this machine's HTP emulator into an EPContext model, renamed and zipped as the
service delivers a ``precompiled_qnn_onnx`` target (``<name>.onnx.zip`` holding
``job_<id>_optimized_onnx/model.onnx`` + ``model.bin``), stamped with the QAIRT version the job
asked for (``--qairt_version``, else the service default). Inference jobs run that artifact on
the emulator (the "device") and report a profile in the service's layout.
"""

from __future__ import annotations

import argparse
import http.server
import itertools
import json
import logging
import shlex
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import h5py
import numpy as np
from qai_hub import public_api_pb2 as api_pb
from qai_hub.util.dataset_entries_converters import dataset_entries_to_h5
from requests_toolbelt.multipart.decoder import MultipartDecoder

State = api_pb.JobState
#: The region of the fake's S3 bucket (one bucket per fake: moto keeps one state per process).
REGION = "us-west-2"
WEB_URL = "https://workbench.aihub.qualcomm.com"
#: Device name → (attributes, the chip's preset for the emulator). The names are real AI Hub
#: devices; attributes as the service lists them.
DEVICES = {
    "Snapdragon X Elite CRD": (
        ["chipset:qualcomm-snapdragon-x-elite", "framework:onnx", "framework:qnn", "os:windows",
         "vendor:qualcomm", "hexagon:v73"],
        "snapdragon-x-elite",
    ),
    "Snapdragon X2 Elite CRD": (
        ["chipset:qualcomm-snapdragon-x2-elite", "framework:onnx", "framework:qnn", "os:windows",
         "vendor:qualcomm", "hexagon:v81"],
        "snapdragon-x2-elite",
    ),
    "Samsung Galaxy S24 (Family)": (
        ["chipset:qualcomm-snapdragon-8gen3", "framework:onnx", "framework:qnn",
         "framework:tflite", "os:android", "vendor:samsung", "hexagon:v75"],
        "snapdragon-8-gen-3",
    ),
}  # fmt: skip
#: QAIRT versions the service offers: (api_version, full_version, tags). The default is newer
#: than the QNN in onnxruntime-qnn 2.7 (2.51): the service moves ahead of the local wheel.
FRAMEWORKS = (
    ("2.45", "2.45.0", []),
    ("2.49", "2.49.40", []),
    ("2.51", "2.51.0", []),
    ("2.53", "2.53.0", ["default", "latest"]),
)

#: A QNN session the way the service's own tooling makes one, with onnxruntime-qnn directly (not
#: edgedepth's code, which is what is under test). Chips: the (soc_model, htp_arch) of each device.
QNN_SESSION = """
import onnxruntime as ort
import onnxruntime_qnn

CHIPS = {"snapdragon-x-elite": (60, 73), "snapdragon-x2-elite": (88, 81),
         "snapdragon-8-gen-3": (57, 75)}


def qnn_session(model, chip, context_file=None):
    name = onnxruntime_qnn.get_ep_name()
    if not any(device.ep_name == name for device in ort.get_ep_devices()):
        ort.register_execution_provider_library(name, onnxruntime_qnn.get_library_path())
    device = next(device for device in ort.get_ep_devices() if device.ep_name == name)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if context_file:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", str(context_file))
        options.add_session_config_entry("ep.context_embed_mode", "0")
    soc, arch = CHIPS[chip]
    options.add_provider_for_devices([device], {
        "backend_path": onnxruntime_qnn.get_qnn_htp_path(), "soc_model": str(soc),
        "htp_arch": str(arch), "enable_htp_fp16_precision": "1"})
    return ort.InferenceSession(str(model), sess_options=options)
"""
COMPILE = (
    QNN_SESSION
    + """
import sys
from pathlib import Path
import onnx
source, folder, chip, sdk_version = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]
folder.mkdir(parents=True)
qnn_session(source, chip, folder / "ctx.onnx")
(binary,) = folder.glob("ctx*.bin")
binary.rename(folder / "model.bin")
model = onnx.load(str(folder / "ctx.onnx"))
for node in model.graph.node:
    for attribute in node.attribute:
        if attribute.name == "ep_cache_context":
            attribute.s = b"model.bin"
        if attribute.name == "ep_sdk_version":
            attribute.s = ("v" + sdk_version + ".260101000000").encode()
onnx.save(model, str(folder / "model.onnx"))
(folder / "ctx.onnx").unlink()
"""
)
DEVICE_RUN = (
    QNN_SESSION
    + """
import json, sys, time
import h5py, numpy as np
from qai_hub.util.dataset_entries_converters import dataset_entries_to_h5, h5_to_dataset_entries
model, chip, inputs, outputs = sys.argv[1:]
session = qnn_session(model, chip)
with h5py.File(inputs, "r") as h5:
    entries = h5_to_dataset_entries(h5)
name = session.get_outputs()[0].name
results, times = [], []
for tensors in zip(*entries.values()):
    started = time.perf_counter()
    results.append(session.run(None, dict(zip(entries, tensors)))[0])
    times.append(time.perf_counter() - started)
with h5py.File(outputs, "w") as h5:
    dataset_entries_to_h5({name: results}, h5)
print(json.dumps({"microseconds": int(1e6 * float(np.median(times)))}))
"""
)


@dataclass
class Job:
    job_id: str
    kind: str  # compile | inference | profile
    pb: Any  # the CompileJob / InferenceJob / ProfileJob message as the client sent it
    options: list[str]
    preset: str
    polls: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None
    #: inference: output dataset id; profile detail (both job kinds)
    output_dataset: str | None = None
    profile: Any = None

    def option(self, name: str) -> str | None:
        """``--name value`` or ``--name=value`` (the last one), read as argparse reads them."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        parser.add_argument(f"--{name}")
        return getattr(parser.parse_known_args(self.options)[0], name)


class FakeAIHub:
    """Start with ``with FakeAIHub(tmp_path) as hub:``; :meth:`write_client_ini` configures the
    client. ``requests`` records (method, path) of every call; ``jobs`` the jobs by id."""

    def __init__(
        self,
        workdir: Path,
        token: str = "test-token",
        fail_compile: bool = False,
        transfer: Literal["s3", "url"] = "s3",
    ):
        self.workdir = workdir
        self.token = token
        self.fail_compile = fail_compile
        #: How files move when the client supports both (older clients always get URLs).
        self.transfer = transfer
        #: "upload" / "download": the next transfer's credentials name an object S3 does not
        #: have (a bucket that is gone, an artifact that expired), so the client's fails.
        self.fail_transfer: str | None = None
        #: Objects the client moved through S3: (method, key) as the S3 server saw them.
        self.s3_objects: list[str] = []
        self._s3: Any = None
        self.bucket = f"aihub-fake-{uuid.uuid4().hex[:12]}"
        #: False: inference jobs come back without a ProfileDetail (the client then gives {}).
        self.profile_detail = True
        self.requests: list[tuple[str, str]] = []
        self.jobs: dict[str, Job] = {}
        self.models: dict[str, api_pb.Model] = {}
        self.model_files: dict[str, Path] = {}
        #: compiled model id → the ONNX model it was compiled from
        self.sources: dict[str, Path] = {}
        self.datasets: dict[str, Path] = {}
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, Path] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub._dispatch(self, "GET")

            def do_POST(self) -> None:
                hub._dispatch(self, "POST")

            def do_PUT(self) -> None:
                hub._dispatch(self, "PUT")

            def do_PATCH(self) -> None:
                hub._dispatch(self, "PATCH")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeAIHub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        if self.transfer == "s3":
            self._start_s3()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._s3 is not None:
            self._s3.stop()

    def _start_s3(self) -> None:
        """moto's S3 in server mode on 127.0.0.1, with the bucket the credentials name."""
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its request log
        self._s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._s3.start()
        host, port = self._s3.get_host_and_port()
        self.s3_url = f"http://{host}:{port}"
        self._bucket = boto3.client(
            "s3", endpoint_url=self.s3_url, region_name=REGION, aws_access_key_id="service",
            aws_secret_access_key="service",
        )  # fmt: skip
        self._bucket.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    def client_environment(self, folder: Path) -> dict[str, str]:
        """What the client's process needs to reach this service's S3 (botocore's documented
        endpoint setting) without reading the user's AWS configuration."""
        if self._s3 is None:
            return {}
        return {
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def write_client_ini(self, path: Path, token: str | None = None) -> Path:
        """A client.ini as `qai-hub configure` writes it, pointing at this server."""
        path.write_text(
            f"[api]\napi_token = {token or self.token}\napi_url = {self.url}\n"
            f"web_url = {WEB_URL}\nverbose = False\n"
        )
        return path

    def device_jobs(self) -> list[str]:
        """Kinds of the jobs that ran on a device (inference, profile), in order."""
        return [job.kind for job in self.jobs.values() if job.kind != "compile"]

    # --- HTTP --------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):07d}"

    def _dispatch(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        parts = [p for p in parsed.path.split("/") if p]
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append((method, parsed.path))
        if parts[:1] == ["files"]:
            return self._send_file(request, parts[1])
        if parts[:1] == ["upload"]:
            return self._receive_upload(request, method, parts[1:], body)
        if parts[:2] != ["api", "v1"]:
            return self._send(request, 404, b"not found", "text/plain")
        if request.headers.get("Authorization") != f"token {self.token}":
            return self._send(request, 401, b'{"detail": "Invalid token."}', "application/json")
        route = (method, *parts[2:])
        try:
            response = self._route(route, query, body, request)
        except LookupError as missing:
            detail = json.dumps({"detail": str(missing)}).encode()
            return self._send(request, 404, detail, "application/json")
        if response is not None:
            self._send(request, 200, response.SerializeToString(), "application/x-protobuf")

    def _send(self, request: Any, status: int, payload: bytes, content_type: str, **headers):
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(payload)

    def _uses_s3(self, query: dict[str, str]) -> bool:
        """Credentials when this fake serves S3 and the client says it can use them."""
        return self._s3 is not None and query.get("supports_s3_credentials") == "true"

    def _credentials(self, key: str, filename: str = "", failing: str = "") -> Any:
        """Short-lived credentials for one object, as the service hands them out."""
        bucket = self.bucket
        if failing and self.fail_transfer == failing:
            self.fail_transfer = None
            bucket = f"{self.bucket}-gone" if failing == "upload" else self.bucket
            key = f"expired/{key}"
        return api_pb.S3Credentials(
            access_key_id="ASIAFAKEAIHUB", secret_access_key="fake-secret",
            session_token="fake-session-token", bucket=bucket, key=key, region=REGION,
            use_transfer_acceleration=False, filename=filename,
        )  # fmt: skip

    def _upload_to(self, kind: str, asset_id: str, query: dict[str, str]) -> Any:
        """Where the client uploads an asset: S3 credentials, or a URL on this server."""
        if self._uses_s3(query):
            key = f"uploads/{kind}/{asset_id}"
            return api_pb.FileUploadResponse(credentials=self._credentials(key, failing="upload"))
        if kind == "model":
            urls = [f"{self.url}/upload/model/{asset_id}"]
            return api_pb.FileUploadResponse(
                multipart_url=api_pb.FileMultipartUploadURL(
                    urls=urls, upload_id=f"u{asset_id}", max_part_size=1 << 40
                )
            )
        return api_pb.FileUploadResponse(
            url=api_pb.FileUploadURL(
                url=f"{self.url}/upload/dataset/{asset_id}", file_field_name="file"
            )
        )

    def _uploaded(self, kind: str, asset_id: str, suffix: str) -> Path:
        """The object the client put into S3, kept as the service keeps it."""
        key = f"uploads/{kind}/{asset_id}"
        path = self.workdir / f"{asset_id}{suffix}"
        path.write_bytes(self._bucket.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        self.s3_objects.append(f"PUT {key}")
        return path

    def _download_from(self, name: str, query: dict[str, str]) -> Any:
        """Where the client downloads the file ``self.files[name]``."""
        if not self._uses_s3(query):
            return api_pb.FileDownloadResponse(
                url=api_pb.FileDownloadURL(url=f"{self.url}/files/{name}", filename=name)
            )
        key = f"downloads/{name}"
        self._bucket.upload_file(str(self.files[name]), self.bucket, key)
        self.s3_objects.append(f"GET {key}")
        return api_pb.FileDownloadResponse(
            credentials=self._credentials(key, filename=name, failing="download")
        )

    def _send_file(self, request: Any, name: str) -> None:
        if name not in self.files:
            return self._send(request, 404, b"<Error><Code>NoSuchKey</Code></Error>", "text/xml")
        self._send(request, 200, self.files[name].read_bytes(), "application/octet-stream")

    def _receive_upload(self, request: Any, method: str, parts: list[str], body: bytes) -> None:
        kind, asset_id = parts[0], parts[1]
        if kind == "model":  # a multipart-upload part (PUT, as to S3): answer with its ETag
            self.uploads[asset_id] = self.uploads.get(asset_id, b"") + body
            return self._send(request, 200, b"", "text/plain", ETag=f'"etag-{asset_id}"')
        decoder = MultipartDecoder(body, request.headers["Content-Type"])  # a POST form
        for part in decoder.parts:
            if b'name="file"' in part.headers.get(b"Content-Disposition", b""):
                path = self.workdir / f"{asset_id}.h5"
                path.write_bytes(part.content)
                self.datasets[asset_id] = path
        self._send(request, 204, b"", "text/plain")

    # --- the API -------------------------------------------------------------------------------

    def _route(self, route: tuple[str, ...], query: dict[str, str], body: bytes, request: Any):
        match route:
            case ("GET", "devices"):
                return self._devices(query)
            case ("GET", "frameworks"):
                frameworks = [
                    api_pb.Framework(name="QAIRT", api_version=v, full_version=f, api_tags=t)
                    for v, f, t in FRAMEWORKS
                ]
                return api_pb.FrameworkList(
                    frameworks=frameworks, total_query_count=len(FRAMEWORKS)
                )
            case ("POST", "models"):
                model = api_pb.Model.FromString(body)
                model.model_id = self._new_id("m")
                self.models[model.model_id] = model
                return api_pb.CreateUpdateResponse(id=model.model_id)
            case ("GET", "models", model_id, "multipart_upload"):
                return self._upload_to("model", model_id, query)
            case ("POST", "models", model_id, "upload_complete"):  # after an S3 upload
                self.model_files[model_id] = self._uploaded("model", model_id, ".onnx")
                return api_pb.CreateUpdateResponse(id=model_id)
            case ("POST", "models", model_id, "multipart_upload"):
                path = self.workdir / f"{model_id}.onnx"
                path.write_bytes(self.uploads.pop(model_id))
                self.model_files[model_id] = path
                return api_pb.CreateUpdateResponse(id=model_id)
            case ("GET", "models", model_id):
                return self._model(model_id)
            case ("GET", "models", model_id, "download"):
                return self._download_from(self.files_of_model(model_id), query)
            case ("POST", "datasets"):
                dataset_id = self._new_id("d")
                self.datasets[dataset_id] = self.workdir / f"{dataset_id}.h5"
                return api_pb.CreateUpdateResponse(id=dataset_id, status="")
            case ("GET", "datasets", dataset_id, "upload_url"):
                return self._upload_to("dataset", dataset_id, query)
            case ("POST", "datasets", dataset_id, "upload_complete"):  # after an S3 upload
                self.datasets[dataset_id] = self._uploaded("dataset", dataset_id, ".h5")
                return api_pb.CreateUpdateResponse(id=dataset_id)
            case ("PATCH", "datasets", dataset_id):
                return api_pb.CreateUpdateResponse(id=dataset_id)
            case ("GET", "datasets", dataset_id):
                return api_pb.Dataset(dataset_id=self._known(self.datasets, dataset_id, "Dataset"))
            case ("GET", "datasets", dataset_id, "download_data"):
                name = f"{self._known(self.datasets, dataset_id, 'Dataset')}.h5"
                self.files[name] = self.datasets[dataset_id]
                return self._download_from(name, query)
            case ("POST", "jobs"):
                return self._submit(api_pb.Job.FromString(body))
            case ("GET", "jobs", job_id):
                return self._job(job_id)
            case ("GET", "jobs", job_id, "result"):
                return self._result(job_id)
        raise LookupError(f"fake AI Hub: no route for {' '.join(route)}")

    @staticmethod
    def _known(table: dict[str, Any], key: str, what: str) -> str:
        if key not in table:
            raise LookupError(f"{what} ID '{key}' could not be found.")
        return key

    def _devices(self, query: dict[str, str]) -> api_pb.DeviceList:
        names = [query["name"]] if query.get("name") else list(DEVICES)
        devices = [
            api_pb.Device(name=name, os="", attributes=DEVICES[name][0])
            for name in names
            if name in DEVICES
        ]
        return api_pb.DeviceList(devices=devices, total_query_count=len(devices))

    def _model(self, model_id: str) -> api_pb.Model:
        return self.models[self._known(self.models, model_id, "Model")]

    def files_of_model(self, model_id: str) -> str:
        self._known(self.models, model_id, "Model")
        job = next(j for j in self.jobs.values() if j.kind == "compile"
                   and j.pb.target_model.model_id == model_id)  # fmt: skip
        job.done.wait()
        return f"job_{job.job_id}_optimized_onnx.onnx.zip"

    # --- jobs ------------------------------------------------------------------------------------

    def _submit(self, job_pb: api_pb.Job) -> api_pb.CreateUpdateResponse:
        kind = job_pb.WhichOneof("job").removesuffix("_job")
        pb = getattr(job_pb, f"{kind}_job")
        device = pb.devices.devices[0].name if kind == "compile" else pb.device.name
        job = Job(self._new_id("j"), kind, pb, shlex.split(pb.options), DEVICES[device][1])
        self.jobs[job.job_id] = job
        if kind == "compile":
            pb.compile_job_id = job.job_id
            pb.device.CopyFrom(pb.devices.devices[0])
            target = api_pb.Model(
                model_id=self._new_id("m"), name=f"job_{job.job_id}_optimized_onnx",
                model_type=api_pb.ModelType.MODEL_TYPE_ONNX, is_directory=True,
                producer_id=job.job_id,
            )  # fmt: skip
            pb.target_model.CopyFrom(target)
            self.models[target.model_id] = target
            work = self._compile
        else:
            setattr(pb, f"{kind}_job_id", job.job_id)
            work = self._run_on_device
        threading.Thread(target=self._finish, args=(job, work), daemon=True).start()
        return api_pb.CreateUpdateResponse(id=job.job_id)

    def _finish(self, job: Job, work: Any) -> None:
        try:
            work(job)
        except Exception as exc:  # the service reports failures in the job, not the request
            job.failure = str(exc)
        finally:
            job.done.set()

    def _qairt(self, job: Job) -> str:
        """The full QAIRT version the job's --qairt_version selects (absent: the default)."""
        wanted = job.option("qairt_version") or "default"
        for version, full, tags in FRAMEWORKS:
            if wanted == version or wanted in tags:
                return full
        raise ValueError(f"--qairt_version {wanted}: not available (QAIRT versions: "
                         f"{', '.join(v for v, _, _ in FRAMEWORKS)})")  # fmt: skip

    def _compile(self, job: Job) -> None:
        if self.fail_compile:
            raise RuntimeError("compilation failed: unsupported op")
        target = job.option("target_runtime") or "tflite"
        source = self.model_files[job.pb.model.model_id]
        folder = self.workdir / job.job_id / f"job_{job.job_id}_optimized_onnx"
        full = None
        if target == "onnx":  # an ONNX model again (the service optimises it; this fake not)
            folder.mkdir(parents=True)
            shutil.copyfile(source, folder / "model.onnx")
        elif target == "precompiled_qnn_onnx":
            full = self._qairt(job)
            done = subprocess.run(
                [sys.executable, "-c", COMPILE, str(source), str(folder), job.preset, full],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"QNN compile failed: {done.stderr.strip().splitlines()[-1]}")
        else:
            raise ValueError(f"--target_runtime {target}: this fake compiles onnx and "
                             "precompiled_qnn_onnx")  # fmt: skip
        archive = self.workdir / f"job_{job.job_id}_optimized_onnx.onnx.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr(f"{folder.name}/", "")
            for file in sorted(folder.iterdir()):
                zipped.write(file, f"{folder.name}/{file.name}")
        self.files[archive.name] = archive
        target = self.models[job.pb.target_model.model_id]
        if full is not None:
            key = api_pb.ModelMetadataKey.MODEL_METADATA_KEY_QAIRT_SDK_VERSION
            target.metadata.entries[key] = full
        self.model_files[target.model_id] = folder / "model.onnx"
        self.sources[target.model_id] = source

    def _run_on_device(self, job: Job) -> None:
        compiled = self.model_files[job.pb.model.model_id]
        dataset = job.pb.dataset.dataset_id if job.kind == "inference" else ""
        inputs = self.datasets[dataset] if dataset else self._random_inputs(compiled, job)
        outputs = self.workdir / f"{job.job_id}-outputs.h5"
        done = subprocess.run(
            [sys.executable, "-c", DEVICE_RUN, str(compiled), job.preset, str(inputs),
             str(outputs)], capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"inference failed: {done.stderr.strip().splitlines()[-1]}")
        if dataset:
            job.output_dataset = self._new_id("d")
            self.datasets[job.output_dataset] = outputs
        if self.profile_detail and (job.kind == "profile" or job.pb.is_profiling_on):
            (timing,) = [x for x in done.stdout.splitlines() if x.startswith('{"microseconds"')]
            job.profile = self._profile(compiled, json.loads(timing)["microseconds"])

    def _random_inputs(self, compiled: Path, job: Job) -> Path:
        """A profile job without data runs on random input of the model's shape."""
        import onnxruntime

        source = self.sources[job.pb.model.model_id]
        (graph_input,) = onnxruntime.InferenceSession(str(source)).get_inputs()
        path = self.workdir / f"{job.job_id}-random.h5"
        with h5py.File(path, "w") as h5:
            image = np.random.default_rng(0).uniform(0, 255, graph_input.shape).astype(np.float32)
            dataset_entries_to_h5({graph_input.name: [image]}, h5)
        return path

    @staticmethod
    def _profile(compiled: Path, microseconds: int) -> api_pb.ProfileDetail:
        """The service's profile layout (major 1, minor 2): times in µs, memory ranges in
        bytes, one entry per layer with the compute unit it ran on."""
        memory = api_pb.ProfileDetail.MemoryUsage(
            increase=api_pb.Range(lower=8 << 20, upper=10 << 20),
            peak=api_pb.Range(lower=12 << 20, upper=30 << 20),
        )
        layers = [
            api_pb.LayerDetail(name=f"layer_{i}", layer_type_name="Conv2d", id=str(i),
                               compute_unit=api_pb.ComputeUnit.COMPUTE_UNIT_NPU)
            for i in range(40)
        ]  # fmt: skip
        return api_pb.ProfileDetail(
            major_version=1, minor_version=2, execution_time=microseconds,
            cold_load_time=150_000, warm_load_time=20_000, execution_memory=memory,
            all_execution_times=[microseconds] * 20, layer_details=layers,
        )  # fmt: skip

    def _job(self, job_id: str) -> api_pb.Job:
        job = self.jobs[self._known(self.jobs, job_id, "Job")]
        job.polls += 1
        if job.kind == "compile":
            running = State.JOB_STATE_OPTIMIZING_MODEL
        elif job.kind == "profile" or job.pb.is_profiling_on:
            running = State.JOB_STATE_MEASURING_PERFORMANCE
        else:
            running = State.JOB_STATE_RUNNING_INFERENCE
        if job.polls == 1:
            state = State.JOB_STATE_CREATED
        elif not job.done.is_set():
            state = running
        else:
            state = State.JOB_STATE_FAILED if job.failure else State.JOB_STATE_DONE
        job.pb.job_state = state
        job.pb.failure_reason = job.failure or ""
        return api_pb.Job(**{f"{job.kind}_job": job.pb}, hub_version="fake")

    def _result(self, job_id: str) -> api_pb.JobResult:
        job = self.jobs[self._known(self.jobs, job_id, "Job")]
        if job.kind == "profile":
            return api_pb.JobResult(
                profile_job_result=api_pb.ProfileJobResult(profile_job_id=job_id,
                                                           profile=job.profile)
            )  # fmt: skip
        result = api_pb.InferenceJobResult(inference_job_id=job_id)
        if job.output_dataset:
            result.output_dataset_id = job.output_dataset
        if job.profile is not None:
            result.detail.CopyFrom(job.profile)
        return api_pb.JobResult(inference_job_result=result)
