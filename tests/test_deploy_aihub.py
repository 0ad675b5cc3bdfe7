"""`edgedepth deploy compile --aihub` against a fake AI Hub (the service cannot be reached here):
the whole flow, the calls checked against the installed client, and the errors a user meets
without a token or without network."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import numpy as np
import pytest

qai_hub = pytest.importorskip("qai_hub")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgedepth.deploy import aihub  # noqa: E402
from edgedepth.errors import EdgedepthError  # noqa: E402
from tests.aihub_fake import FakeHub  # noqa: E402
from tests.conftest import run_edgedepth  # noqa: E402
from tests.dav2_fixtures import TINY, save_hf  # noqa: E402


@pytest.fixture
def token(tmp_path, monkeypatch) -> Path:
    """A client.ini as `qai-hub configure` writes it; the API host is this machine."""
    ini = tmp_path / "client.ini"
    ini.write_text(
        "[api]\napi_token = test-token\napi_url = http://127.0.0.1:{port}\n"
        "web_url = https://workbench.aihub.qualcomm.com\n"
    )
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    return ini


@pytest.fixture
def reachable(token, monkeypatch):
    """The fake's API host accepts connections (a real listening socket)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    token.write_text(token.read_text().format(port=server.getsockname()[1]))
    yield
    server.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    save_hf(root / "tiny-hf", "relative", TINY)
    config = root / "tiny.yaml"
    config.write_text(
        f"source: {{type: synthetic, frames: 3, width: 126, height: 126}}\n"
        f"backend: {{type: dav2-relative, checkpoint: {root / 'tiny-hf'}}}\n"
        f"runtime: {{cache_dir: {root / 'cache'}}}\n"
    )
    result = run_edgedepth("deploy", "export", "--config", str(config), "--out", str(root / "exp"))
    assert result.returncode == 0, result.stderr
    return root / "exp"


def inputs_and_reference(exported: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (1, 3, 126, 126)).astype(np.float32) for _ in range(2)]
    return frames, [session.run(None, {"image": frame})[0] for frame in frames]


def test_fake_takes_the_installed_clients_calls():
    fake = FakeHub(Path("."))
    for name in ("submit_compile_job", "submit_profile_job", "submit_inference_job", "get_job"):
        real = list(inspect.signature(getattr(qai_hub, name)).parameters)
        assert list(inspect.signature(getattr(fake, name)).parameters) == real, name
    assert fake.Device is qai_hub.Device
    client_source = Path(inspect.getsourcefile(qai_hub.client)).read_text()
    for option in ("precompiled_qnn_onnx", "tflite", "max_profiler_iterations"):
        assert option in client_source


@pytest.mark.qnn
def test_compile_profile_inference_compare(tmp_path, exported, reachable, capsys, monkeypatch):
    monkeypatch.setattr(aihub, "POLL_SECONDS", 0.01)
    hub = FakeHub(tmp_path)
    frames, reference = inputs_and_reference(exported)
    out = tmp_path / "hub"
    results = aihub.compile_on_aihub(
        exported, out, device="Snapdragon X Elite CRD", frames=frames,
        reference_outputs=reference, hub=hub,
    )  # fmt: skip
    assert [call for call, _ in hub.calls] == ["compile", "profile", "inference"]
    compile_call = hub.calls[0][1]
    assert compile_call["options"] == "--target_runtime precompiled_qnn_onnx"
    assert compile_call["input_specs"] == {"image": ((1, 3, 126, 126), "float32")}
    assert compile_call["device"].name == "Snapdragon X Elite CRD"
    assert hub.calls[1][1]["options"] == "--max_profiler_iterations 20"

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["aihub"] == json.loads(json.dumps(results))
    assert results["compile"]["job_id"] == "jcmp1"
    assert results["profile"]["latency_ms"] == pytest.approx(26.725)
    assert results["profile"]["peak_memory_mb"] == [12.0, 30.0]
    assert results["profile"]["layers_by_compute_unit"] == {"NPU": 40, "CPU": 1}
    accuracy = results["inference"]["accuracy_vs_cpu"]
    assert 0 < accuracy["relative_error"] < 1e-2 and accuracy["delta1_agreement"] > 0.99
    printed = capsys.readouterr()
    assert "26.73 ms on device" in printed.out and "compile: optimizing_model" in printed.err

    # The downloaded precompiled artifact runs in `edgedepth run` (the HTP emulator here).
    assert manifest["run_model"].endswith(".onnx") and (out / manifest["run_model"]).exists()
    config = tmp_path / "run.yaml"
    config.write_text(
        "source: {type: synthetic, frames: 2, width: 126, height: 126}\n"
        f"backend: {{type: dav2-relative, model: {out}}}\n"
        f"sinks: [{{type: npy, dir: {tmp_path / 'npy'}}}]\n"
    )
    run = run_edgedepth("run", "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert "loaded context binary" in run.stderr and len(list((tmp_path / "npy").iterdir())) == 2


def test_failed_compile_job_is_one_line(tmp_path, exported, reachable, monkeypatch):
    monkeypatch.setattr(aihub, "POLL_SECONDS", 0.01)
    frames, reference = inputs_and_reference(exported)
    with pytest.raises(EdgedepthError, match=r"compile job jcmp1 failed: compilation failed"):
        aihub.compile_on_aihub(
            exported, tmp_path / "hub", device="Samsung Galaxy S24 (Family)", frames=frames,
            reference_outputs=reference, hub=FakeHub(tmp_path, fail_compile=True),
        )  # fmt: skip
    manifest = json.loads((tmp_path / "hub" / "manifest.json").read_text())
    assert manifest["aihub"]["compile"]["job_id"] == "jcmp1"  # kept, for `deploy status`


def test_missing_token_stops_before_any_upload(tmp_path, monkeypatch):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "nowhere.ini"))
    hub = FakeHub(tmp_path)
    with pytest.raises(EdgedepthError, match="qai-hub configure --api_token"):
        aihub.compile_on_aihub(
            tmp_path, tmp_path / "out", device="x", frames=[], reference_outputs=[], hub=hub
        )
    assert hub.calls == []
    result = run_edgedepth(
        "deploy", "compile", "--config", str(tmp_path / "any.yaml"), "--out", str(tmp_path / "o"),
        "--aihub", env={"QAIHUB_CLIENT_INI": str(tmp_path / "nowhere.ini")},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no Qualcomm AI Hub token") and "qai-hub configure" in line


def test_unreachable_service_fails_fast(tmp_path, token, exported):
    token.write_text(token.read_text().format(port=9))  # nothing listens on port 9
    started = time.monotonic()
    result = run_edgedepth(
        "deploy", "status", "jcmp1", env={"QAIHUB_CLIENT_INI": str(token)}, timeout=60
    )
    seconds = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach AI Hub at 127.0.0.1:9" in result.stderr
    assert seconds < 15


def test_status_of_a_finished_job_downloads_the_artifact(tmp_path, exported, reachable):
    pytest.importorskip("onnxruntime_qnn")
    hub = FakeHub(tmp_path)
    job = hub.submit_compile_job(str(exported / "model.onnx"), qai_hub.Device("x"),
                                 options="--target_runtime precompiled_qnn_onnx")  # fmt: skip
    while not job.get_status().finished:
        pass
    result = aihub.job_status("jcmp1", tmp_path / "resumed", hub=hub)
    assert result["state"] == "SUCCESS" and (tmp_path / "resumed" / result["artifact"]).exists()
