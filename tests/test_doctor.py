"""`edgedepth doctor` on this machine (x86-64, HTP emulator, no AI Hub token): every field of
the JSON report, the human report's verdict, `--verify` compiling the probe model on the
emulator, and the verdicts a Snapdragon laptop would get."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import onnxruntime
import pytest

import edgedepth
from edgedepth.system import doctor
from tests.conftest import run_edgedepth

SECRET = "d0ct0r-s3cr3t"


def doctor_json(tmp_path: Path, *args: str, ini: Path | None = None) -> dict:
    env = {
        "QAIHUB_CLIENT_INI": str(ini or tmp_path / "absent.ini"),
        "EDGEDEPTH_CACHE": str(tmp_path / "cache"),
    }
    result = run_edgedepth("doctor", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return json.loads(result.stdout)


#: This machine: Linux x86-64, whose onnxruntime-qnn offers Qualcomm's HTP emulator.
EMULATOR_HOST = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="expects the Linux x86-64 HTP emulator",
)


@EMULATOR_HOST
def test_doctor_json_reports_every_field_on_this_machine(tmp_path):
    report = doctor_json(tmp_path)
    assert report["edgedepth"] == edgedepth.__version__
    host = report["host"]
    assert host["system"] == platform.system()
    assert host["python_version"] == platform.python_version()
    assert host["machine_arch"] == host["python_arch"] == "x86_64" and host["emulated"] is False
    assert host["note"] is None and host["unsupported_python"] is None
    assert host["python_executable"] == sys.executable and host["cpu_count"] >= 1
    packages = report["packages"]
    assert packages["onnxruntime"] == onnxruntime.__version__
    qnn_package = pytest.importorskip("onnxruntime_qnn")
    assert packages["onnxruntime-qnn"] == qnn_package.__version__
    assert packages["qnn_sdk"] == qnn_package.build_and_package_info.qnn_version
    assert set(packages) >= {"qai-hub", "av", "ffmpeg", "opencv", "torch", "numpy"}
    qnn = report["qnn"]
    assert qnn["available"] and qnn["npu"] is False and qnn["target"] == "emulator"
    assert qnn["description"].startswith("HTP emulator on the CPU") and qnn["chip"] is None
    assert qnn["backend_path"] == qnn_package.get_qnn_htp_path() and qnn["backend_path_exists"]
    devices = {(d["ep"], d["device_type"]) for d in report["ep_devices"]}
    assert {("CPUExecutionProvider", "CPU"), ("QNNExecutionProvider", "CPU")} <= devices
    hub = report["aihub"]
    assert hub["config_found"] is False and hub["token_present"] is False
    assert "no Qualcomm AI Hub token" in hub["problem"] and hub["api_url"] is None
    caches = report["caches"]
    assert caches["edgedepth"]["path"] == str(tmp_path / "cache")
    assert caches["edgedepth"]["free_gb"] > 0 and caches["temp"]["free_gb"] > 0
    assert report["cameras"] == [{"api": "v4l2", "devices": [], "error": None}]
    assert report["verdict"]["npu_ready"] is False
    assert report["verdict"]["message"].startswith("NPU: not available because the QNN EP offers")
    assert "verify" not in report


def test_doctor_shows_the_ai_hub_config_but_never_the_token(tmp_path):
    ini = tmp_path / "client.ini"
    ini.write_text(
        f"[api]\napi_token = {SECRET}\napi_url = https://workbench.aihub.qualcomm.com\n"
        "web_url = https://workbench.aihub.qualcomm.com\n"
    )
    hub = doctor_json(tmp_path, ini=ini)["aihub"]  # doctor_json asserts the token never shows
    assert hub["token_present"] and hub["problem"] is None
    assert hub["api_url"] == "https://workbench.aihub.qualcomm.com"
    ini.write_text(f"api_token = {SECRET}\n")  # malformed: the parser would quote this line
    assert "not a valid client.ini (line 1)" in doctor_json(tmp_path, ini=ini)["aihub"]["problem"]


@EMULATOR_HOST
@pytest.mark.qnn
def test_doctor_verify_compiles_and_checks_a_model_on_the_emulator(tmp_path):
    pytest.importorskip("onnxruntime_qnn")
    check = doctor_json(tmp_path, "--verify")["verify"]
    assert check["passed"] and check["error"] is None and check["npu"] is False
    assert 0 < check["relative_error"] < doctor.VERIFY_TOLERANCE
    assert check["compile_seconds"] > 0 and check["qnn_ms"] > 0 and check["cpu_ms"] > 0
    human = run_edgedepth("doctor", "--verify", env={"QAIHUB_CLIENT_INI": str(tmp_path / "x")})
    assert human.returncode == 0, human.stderr
    lines = human.stdout.strip().splitlines()
    assert "  passed" in lines and lines[-1].startswith("NPU: not available because")


def test_the_human_report_ends_with_the_verdict(tmp_path):
    result = run_edgedepth("doctor", env={"QAIHUB_CLIENT_INI": str(tmp_path / "absent.ini")})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for section in ("packages:", "QNN:", "execution providers:", "AI Hub:", "caches:", "cameras"):
        assert f"\n{section}" in text
    assert text.strip().splitlines()[-1].startswith("NPU: ")


def report_on(host: dict, qnn: dict, verify: dict | None = None) -> dict:
    base_host = {"unsupported_python": None, "note": None, "emulated": False}
    report = {"host": {**base_host, **host}, "qnn": qnn}
    if verify is not None:
        report["verify"] = verify
    return report


def test_verdicts_on_snapdragon_laptops():
    npu = {"available": True, "npu": True, "description": "Snapdragon(R) X Elite - X1E78100 - "
           "Qualcomm(R) Hexagon(TM) NPU"}  # fmt: skip
    ready, line = doctor.verdict(report_on({}, npu))
    assert ready and line.startswith("NPU: ready (Snapdragon(R) X Elite") and "--verify" in line
    ready, line = doctor.verdict(report_on({}, npu, {"passed": True}))
    assert ready and "verified" in line
    ready, line = doctor.verdict(report_on({}, npu, {"passed": False, "error": "boom"}))
    assert not ready and line.endswith("--verify failed: boom")
    emulated = doctor.verdict(
        report_on({"emulated": True, "note": "this is an x86_64 Python emulated on an Arm64 "
                   "Windows: the Snapdragon NPU is invisible to it"}, {"available": False})
    )  # fmt: skip
    assert emulated == (False, "NPU: not available because this is an x86_64 Python emulated on "
                        "an Arm64 Windows: the Snapdragon NPU is invisible to it")  # fmt: skip


def test_the_probe_model_is_what_its_generator_writes():
    onnx = pytest.importorskip("onnx")
    sys.path.insert(0, str(Path(__file__).parent / "tools"))
    try:
        from make_doctor_probe import build
    finally:
        sys.path.pop(0)
    assert onnx.load(str(doctor.PROBE_MODEL)) == build()


@EMULATOR_HOST
def test_without_an_npu_driver_on_arm64_the_verdict_names_the_driver():
    """The devices the QNN EP really offers here (its CPU device: the emulator) as a Windows
    on Arm64 laptop without the NPU driver sees them: its wheel has no emulator, so the CPU
    device is no target, and the verdict says what is missing and what to do."""
    from edgedepth.api.errors import EdgedepthError
    from edgedepth.runtime import qnn

    target = qnn.qnn_target()  # registers the EP
    devices = [d for d in onnxruntime.get_ep_devices() if d.ep_name == target.ep_device.ep_name]
    assert qnn.choose_device(devices, "Linux", "x86_64") is devices[0]  # the emulator, here
    with pytest.raises(EdgedepthError) as missing:
        qnn.choose_device(devices, "Windows", "arm64")
    reason = str(missing.value)
    assert reason.startswith("the QNN execution provider finds no NPU (it offers only: CPU ")
    assert "NPU driver" in reason and "Windows Update" in reason and "emulator" not in reason
    ready, line = doctor.verdict(report_on({}, {"available": False, "error": reason}))
    assert not ready and line.startswith("NPU: not available because the QNN execution provider")
    assert "Device Manager" in line
