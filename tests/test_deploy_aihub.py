"""`edgedepth deploy compile --aihub` and `deploy status` with the real qai-hub client talking to
a fake of the service on 127.0.0.1 (tests/aihub_fake.py): the archive as AI Hub ships it,
compiled for real on the HTP emulator and run afterwards; one device job; the QAIRT version; the
token, proxy and error handling a user meets. Files move as 0.56 asks the service to move them,
through S3 credentials and the client's own botocore transfer (a real S3 server, moto, on
127.0.0.1), and through pre-signed URLs, as older clients and the service's fallback do."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

qai_hub = pytest.importorskip("qai_hub")
onnxruntime_qnn = pytest.importorskip("onnxruntime_qnn")

from edgedepth.api.errors import EdgedepthError  # noqa: E402
from edgedepth.deploy import aihub  # noqa: E402
from edgedepth.runtime.sessions import is_context_model  # noqa: E402
from tests.aihub_fake import FakeAIHub  # noqa: E402
from tests.conftest import NO_PROXY, free_port, run_edgedepth  # noqa: E402
from tests.onnx_models import depth_model_folder  # noqa: E402

SECRET = "s3cr3t-t0ken-4f9a"
DEVICE = "Snapdragon X Elite CRD"
LOCAL_QAIRT = ".".join(onnxruntime_qnn.build_and_package_info.qnn_version.split(".")[:2])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return depth_model_folder(tmp_path_factory.mktemp("exported") / "float")


def deploy_config(tmp_path: Path) -> Path:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "source: {type: synthetic, frames: 2, width: 32, height: 32}\n"
        "preprocess: {resize: {policy: fixed, width: 32, height: 32}}\n"
        "backend: {type: dav2-relative}\n"
    )
    return config


def compile_command(tmp_path: Path, model: Path, out: Path, pythonpath: str | None = None):
    env = {"QAIHUB_CLIENT_INI": str(tmp_path / "client.ini"), **NO_PROXY}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return run_edgedepth(
        "deploy", "compile", "--config", str(deploy_config(tmp_path)), "--model", str(model),
        "--out", str(out), "--aihub", "--device", DEVICE, "--samples", "2", env=env,
    )  # fmt: skip


@pytest.mark.qnn
def test_compile_downloads_the_artifact_as_shipped_and_it_runs_on_qnn(tmp_path, hub, model):
    result = compile_command(tmp_path, model, tmp_path / "hub")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "hub" / "manifest.json").read_text())
    compile_id = manifest["aihub"]["compile"]["job_id"]

    # The real client saved `<name>.onnx.zip` holding job_<id>_optimized_onnx/{model.onnx,
    # model.bin}; the EPContext model is what runs, not the binary, not the float model.
    folder = f"job_{compile_id}_optimized_onnx"
    assert manifest["run_model"] == f"{folder}/model.onnx"
    shipped = sorted(path.name for path in (tmp_path / "hub" / folder).iterdir())
    assert shipped == ["model.bin", "model.onnx"]
    assert is_context_model(tmp_path / "hub" / folder / "model.onnx")
    assert not list((tmp_path / "hub").glob("*.zip"))
    assert (tmp_path / "hub" / manifest["reference_model"]).is_file()  # for runtime auto

    # Every file went through S3 with the client's botocore: the model and the frames up,
    # the compiled archive and the device's outputs down.
    moved = sorted(key.rsplit("/", 1)[0] for key in hub.s3_objects)
    assert moved == ["GET downloads", "GET downloads", "PUT uploads/dataset", "PUT uploads/model"]
    assert not [path for _, path in hub.requests if path.startswith(("/files", "/upload"))]

    # One device job (profiling inference), no deprecated profile job, no warning printed.
    assert hub.device_jobs() == ["inference"]
    (inference,) = [j for j in hub.jobs.values() if j.kind == "inference"]
    assert inference.pb.is_profiling_on and "===WARNING===" not in result.stdout
    results = manifest["aihub"]
    assert results["profile"]["job_id"] == results["inference"]["job_id"] == inference.job_id
    assert results["profile"]["latency_ms"] > 0
    assert results["profile"]["peak_memory_mb"] == [12.0, 30.0]
    assert results["profile"]["layers_by_compute_unit"] == {"NPU": 40}
    accuracy = results["inference"]["accuracy_vs_cpu"]
    assert 0 < accuracy["relative_error"] < 1e-2 and accuracy["delta1_agreement"] > 0.99
    assert "ms on device" in result.stdout and "device vs local CPU" in result.stdout

    # Compiled for the QAIRT of the local QNN (not AI Hub's newer default), recorded.
    assert f"--qairt_version {LOCAL_QAIRT}" in results["compile"]["options"]
    assert "--qairt_version" in inference.pb.options
    assert results["qairt_version"] == LOCAL_QAIRT
    assert results["qnn_local"] == onnxruntime_qnn.build_and_package_info.qnn_version
    assert results["onnxruntime_qnn"] == onnxruntime_qnn.__version__
    assert results["target_qairt"].startswith(LOCAL_QAIRT)

    run_config = tmp_path / "run.yaml"
    run_config.write_text(
        "source: {type: synthetic, frames: 2, width: 32, height: 32}\n"
        "preprocess: {resize: {policy: fixed, width: 32, height: 32}}\n"
        f"backend: {{type: dav2-relative, model: '{tmp_path / 'hub'}', runtime: qnn}}\n"
        f"sinks: [{{type: npy, dir: '{tmp_path / 'npy'}'}}]\n"
    )
    run = run_edgedepth("run", "--config", str(run_config))
    assert run.returncode == 0, run.stderr
    assert f"loaded context binary {tmp_path / 'hub' / folder / 'model.onnx'}" in run.stderr
    assert len(list((tmp_path / "npy").glob("*.npy"))) == 2

    # `deploy status` shares the download: the same files, the same run_model.
    status = run_edgedepth(
        "deploy", "status", compile_id, "--out", str(tmp_path / "resumed"),
        env={"QAIHUB_CLIENT_INI": str(tmp_path / "client.ini"), **NO_PROXY},
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    resumed = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert resumed["run_model"] == manifest["run_model"]
    for name in ("model.onnx", "model.bin"):
        original = (tmp_path / "hub" / folder / name).read_bytes()
        assert (tmp_path / "resumed" / folder / name).read_bytes() == original


@pytest.mark.parametrize("hub", ["s3", "url"], indirect=True)
def test_the_fake_ships_what_the_client_expects(tmp_path, hub, model):
    """The archive the real client downloads: one top folder holding the EPContext model and
    the context binary it names (AI Hub's precompiled_qnn_onnx layout), by either transfer."""
    client = qai_hub.Client()
    job = client.submit_compile_job(
        model=str(model / "model.onnx"), device=qai_hub.Device(DEVICE),
        options=f"--target_runtime precompiled_qnn_onnx --qairt_version {LOCAL_QAIRT}",
    )  # fmt: skip
    aihub.wait_for(job, "compile")
    downloaded = Path(job.download_target_model(str(tmp_path / "aihub_target")))
    assert downloaded.name == "aihub_target.onnx.zip"
    with zipfile.ZipFile(downloaded) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    folder = f"job_{job.job_id}_optimized_onnx"
    assert names == [f"{folder}/model.bin", f"{folder}/model.onnx"]
    import onnx

    with zipfile.ZipFile(downloaded) as archive:
        context = onnx.load_from_string(archive.read(f"{folder}/model.onnx"))
    (node,) = context.graph.node
    cache = {attribute.name: attribute.s for attribute in node.attribute}
    assert cache["ep_cache_context"] == b"model.bin"
    assert cache["ep_sdk_version"].decode().startswith(f"v{LOCAL_QAIRT}.")
    through_this_server = [
        path for _, path in hub.requests if path.startswith(("/upload/", "/files/"))
    ]
    if hub.transfer == "s3":  # botocore moved both files; nothing came through this server
        assert [key.split("/")[0] for key in hub.s3_objects] == ["PUT uploads", "GET downloads"]
        assert not through_this_server
    else:
        assert [path.split("/")[1] for path in through_this_server] == ["upload", "files"]
        assert not hub.s3_objects


@pytest.fixture(scope="session")
def qai_hub_055(tmp_path_factory) -> str:
    """qai-hub 0.55 (before profile jobs were folded into inference jobs), unpacked beside the
    installed 0.56 for a child process's PYTHONPATH."""
    folder = tmp_path_factory.mktemp("qai_hub_055")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "qai-hub==0.55.0", "-d", str(folder)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wheels = list(folder.glob("qai_hub-0.55.0-*.whl"))
    if download.returncode != 0 or not wheels:
        pytest.skip(f"qai-hub 0.55.0 not downloadable here: {download.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(folder / "site")
    return str(folder / "site")


@pytest.mark.qnn
@pytest.mark.slow  # ~16 s: the 0.55 client path, its own emulator compile
def test_older_clients_still_use_a_profile_job_and_an_inference_job(
    tmp_path, hub, model, qai_hub_055
):
    result = compile_command(tmp_path, model, tmp_path / "hub", pythonpath=qai_hub_055)
    assert result.returncode == 0, result.stderr
    assert hub.device_jobs() == ["profile", "inference"]
    assert all("--qairt_version" in j.pb.options for j in hub.jobs.values())
    results = json.loads((tmp_path / "hub" / "manifest.json").read_text())["aihub"]
    assert results["profile"]["job_id"] != results["inference"]["job_id"]
    assert results["profile"]["latency_ms"] > 0
    assert results["inference"]["accuracy_vs_cpu"]["relative_error"] < 1e-2


class FirstOutput:
    """The depth model of these raw test graphs: their first output, as it is."""

    def depth(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        return next(iter(outputs.values()))


def feeds_and_reference(model: Path) -> dict:
    """compile_on_aihub's keywords for two random frames of the test graph."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model / "model.onnx"))
    rng = np.random.default_rng(0)
    feeds = [{"image": rng.uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)} for _ in range(2)]
    reference = [session.run(None, feed)[0] for feed in feeds]
    return {"model": FirstOutput(), "feeds": feeds, "reference_depth": reference}


@pytest.mark.qnn
def test_a_job_without_a_profile_is_a_clear_error(tmp_path, hub, model):
    hub.profile_detail = False  # the service returns no ProfileDetail for this job
    with pytest.raises(EdgedepthError, match=r"AI Hub job j\d+ returned no profile"):
        aihub.compile_on_aihub(model, tmp_path / "hub", device=DEVICE, **feeds_and_reference(model))


def test_failed_compile_job_is_one_line_and_keeps_its_id(tmp_path, hub, model):
    hub.fail_compile = True
    with pytest.raises(EdgedepthError, match=r"compile job j\d+ failed: compilation failed"):
        aihub.compile_on_aihub(model, tmp_path / "hub", device=DEVICE, **feeds_and_reference(model))
    manifest = json.loads((tmp_path / "hub" / "manifest.json").read_text())
    assert manifest["aihub"]["compile"]["job_id"] in hub.jobs  # kept, for `deploy status`


def test_a_wrong_token_is_one_line_and_never_shown(tmp_path, hub, model):
    hub.write_client_ini(tmp_path / "client.ini", token=SECRET)
    result = run_edgedepth(
        "deploy", "status", "j0000001",
        env={"QAIHUB_CLIENT_INI": str(tmp_path / "client.ini"), **NO_PROXY},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: AI Hub job j0000001: Failed to authenticate")
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"api_token = {SECRET}\napi_url = https://x\n", "not a valid client.ini (line 1)"),
        (f"[api]\napi_token {SECRET}\n", "not a valid client.ini (line 2)"),
        (f"[api]\napi_token = {SECRET}\napi_url = https://x\n", "[api] has no web_url"),
        ("", "[api] has no api_token, api_url, web_url"),
        ("[api]\napi_token =\napi_url = https://x\nweb_url = https://y\n", "has no api_token"),
        (f"[api]\napi_token = {SECRET}\napi_url = x\nweb_url = https://y\n", "api_url 'x' is "),
    ],
    ids=["no-section", "no-equals", "no-web-url", "empty", "empty-token", "bad-url"],
)
def test_client_ini_problems_are_one_line_without_the_token(tmp_path, content, expected):
    ini = tmp_path / "client.ini"
    ini.write_text(content)
    result = run_edgedepth("deploy", "status", "j1", env={"QAIHUB_CLIENT_INI": str(ini)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert expected in line and str(ini) in line
    assert SECRET not in line


class Proxy:
    """A forward proxy on 127.0.0.1 that records the first line of each request: plain HTTP
    (``GET http://host/…``) is answered 200 by the proxy itself, CONNECT with ``connect``;
    ``socks=True``: a SOCKS5 proxy that records the (host, port) asked for and answers 200
    through the tunnel."""

    def __init__(self, connect: str = "403 Forbidden", socks: bool = False) -> None:
        self.connect, self.socks = connect, socks
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        scheme = "socks5h" if socks else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                if self.socks:
                    connection.recv(16)  # greeting: version, methods
                    connection.sendall(b"\x05\x00")  # no authentication
                    request = connection.recv(512)  # VER CMD RSV ATYP=3 LEN HOST PORT
                    host = request[5 : 5 + request[4]].decode()
                    port = int.from_bytes(request[5 + request[4] : 7 + request[4]], "big")
                    self.requests.append(f"SOCKS {host}:{port}")
                    connection.sendall(b"\x05\x00\x00\x01" + bytes(6))
                line = connection.recv(4096).decode().split("\r\n")[0]
                if not self.socks:
                    self.requests.append(line)
                status = self.connect if line.startswith("CONNECT") else "200 OK"
                connection.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())


@pytest.fixture
def proxy_environment(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_the_reachability_probe_takes_the_clients_route(proxy_environment, variable):
    """The probe is a request made with requests, the client's HTTP stack: it goes where the
    client's requests will go, whichever variable names the proxy."""
    port = free_port()  # nothing listens there: only the proxy can answer
    proxy = Proxy()
    proxy_environment.setenv(variable, proxy.url)
    if variable.lower() == "all_proxy":
        aihub.check_reachable(f"http://localhost:{port}/api/v1/", timeout=5)
        assert proxy.requests == [f"GET http://localhost:{port}/api/v1/ HTTP/1.1"]
    with pytest.raises(EdgedepthError, match=rf"cannot reach AI Hub at localhost:{port} through "
                       r"the proxy 127\.0\.0\.1:\d+ \(the proxy failed"):  # fmt: skip
        aihub.check_reachable(f"https://localhost:{port}", timeout=5)  # the proxy says 403
    assert proxy.requests[-1].startswith(f"CONNECT localhost:{port} HTTP/1.")

    proxy_environment.setenv("NO_PROXY", "localhost")  # bypassed: straight to the closed port
    asked = len(proxy.requests)
    with pytest.raises(EdgedepthError, match=rf"AI Hub at localhost:{port} \(Connection refused"):
        aihub.check_reachable(f"https://localhost:{port}", timeout=5)
    assert len(proxy.requests) == asked


def test_the_reachability_probe_goes_through_a_socks_proxy(proxy_environment):
    pytest.importorskip("socks")  # PySocks: requests' SOCKS support, as for the client
    proxy = Proxy(socks=True)
    proxy_environment.setenv("ALL_PROXY", proxy.url)
    port = free_port()
    aihub.check_reachable(f"http://aihub.invalid:{port}/api/v1/", timeout=5)
    assert proxy.requests == [f"SOCKS aihub.invalid:{port}"]  # the name, resolved by the proxy


def test_missing_token_stops_before_any_upload(tmp_path, monkeypatch, no_proxy):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "nowhere.ini"))
    (tmp_path / "service").mkdir()
    with FakeAIHub(tmp_path / "service") as fake, pytest.raises(EdgedepthError, match="configure"):
        aihub.compile_on_aihub(
            tmp_path, tmp_path / "out", device=DEVICE, model=FirstOutput(), feeds=[],
            reference_depth=[],
        )  # fmt: skip
    assert fake.requests == []
    result = run_edgedepth(
        "deploy", "compile", "--config", str(tmp_path / "any.yaml"), "--out", str(tmp_path / "o"),
        "--aihub", env={"QAIHUB_CLIENT_INI": str(tmp_path / "nowhere.ini")},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no Qualcomm AI Hub token") and "qai-hub configure" in line


def test_unreachable_service_fails_fast(tmp_path, no_proxy):
    ini = tmp_path / "client.ini"
    ini.write_text(
        "[api]\napi_token = t\napi_url = http://127.0.0.1:9\nweb_url = https://w.example\n"
    )  # nothing listens on port 9
    started = time.monotonic()
    result = run_edgedepth(
        "deploy", "status", "j1", env={"QAIHUB_CLIENT_INI": str(ini), **NO_PROXY}, timeout=60
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach AI Hub at 127.0.0.1:9" in result.stderr
    assert time.monotonic() - started < 15


def submitted_options(hub) -> list[str]:
    (compile_job,) = [job for job in hub.jobs.values() if job.kind == "compile"]
    return compile_job.options


@pytest.mark.parametrize("given", ["--qairt_version=2.49", "--qairt_version 2.49"])
def test_the_users_qairt_version_in_either_form_is_the_only_one(tmp_path, hub, model, given):
    hub.fail_compile = True  # what was submitted is all this test needs
    with pytest.raises(EdgedepthError, match="compile job"):
        aihub.compile_on_aihub(
            model, tmp_path / "hub", device=DEVICE, compile_options=given,
            **feeds_and_reference(model),
        )  # fmt: skip
    options = submitted_options(hub)
    assert [o for o in options if o.startswith("--qairt_version")] == given.split(" ")[:1]
    assert hub.jobs[next(iter(hub.jobs))].option("qairt_version") == "2.49"


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_no_qairt_pin_for_targets_not_built_with_qairt(tmp_path, hub, model, target):
    hub.fail_compile = True
    with pytest.raises(EdgedepthError, match="compile job"):
        aihub.compile_on_aihub(
            model, tmp_path / "hub", device=DEVICE, target_runtime=target,
            **feeds_and_reference(model),
        )  # fmt: skip
    assert not [o for o in submitted_options(hub) if "qairt" in o]
    assert ("GET", "/api/v1/frameworks") not in hub.requests  # not even asked for


def finished_compile_job(hub, model: Path, options: str) -> str:
    """A compile job submitted by the real client, waited for; its id."""
    job = qai_hub.Client().submit_compile_job(
        model=str(model / "model.onnx"), device=qai_hub.Device(DEVICE), options=options
    )
    aihub.wait_for(job, "compile")
    return job.job_id


def status_command(tmp_path: Path, job_id: str, out: Path):
    return run_edgedepth("deploy", "status", job_id, "--out", str(out))


@pytest.mark.parametrize("hub", ["s3", "url"], indirect=True)
def test_deploy_status_reads_the_target_runtime_given_with_an_equals_sign(tmp_path, hub, model):
    job_id = finished_compile_job(hub, model, "--target_runtime=onnx")
    result = status_command(tmp_path, job_id, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    folder = f"job_{job_id}_optimized_onnx"
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["run_model"] == (
        f"{folder}/model.onnx"
    )
    assert (tmp_path / "out" / folder / "model.onnx").read_bytes() == (
        model / "model.onnx"
    ).read_bytes()


@pytest.mark.parametrize("hub", ["s3", "url"], indirect=True)
def test_a_failing_download_is_one_line(tmp_path, hub, model):
    job_id = finished_compile_job(hub, model, "--target_runtime onnx")
    if hub.transfer == "s3":
        hub.fail_transfer = "download"  # the credentials name an object S3 no longer has
        expected = "transfer failed: An error occurred (404) when calling the HeadObject"
    else:
        hub.files.clear()  # the pre-signed URL answers 404
        expected = "compile job"
    result = status_command(tmp_path, job_id, tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: AI Hub compile job {job_id}: ") and expected in line


def test_a_failing_upload_is_one_line(tmp_path, hub, model):
    hub.fail_transfer = "upload"  # the credentials name a bucket that is gone
    result = compile_command(tmp_path, model, tmp_path / "hub")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: AI Hub compile: transfer failed: An error occurred "
                           "(NoSuchBucket) when calling the PutObject operation")  # fmt: skip
    assert not [job for job in hub.jobs.values()]  # nothing submitted without the model
