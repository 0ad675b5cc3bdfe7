"""The QNN runtime where users run it: the HTP library passed by absolute path, the chip left to
a real NPU's driver (presets only for the emulator and offline compiles), runtime auto falling
back to the CPU with the reason, context binaries from a newer QNN refused in one line, and the
emulator named as such."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from pydantic import ValidationError

from edgedepth.runtime import qnn
from edgedepth.runtime.options import QnnOptions
from tests.conftest import run_edgedepth

onnxruntime_qnn = pytest.importorskip("onnxruntime_qnn")

REPO = Path(__file__).resolve().parent.parent
PRETEND_NPU = Path(__file__).parent / "tools" / "pretend_npu.py"
COMPILE = """
import sys
from pathlib import Path
from edgedepth.runtime.options import QnnOptions
from edgedepth.runtime.sessions import qnn_session
qnn_session(Path(sys.argv[1]), QnnOptions(), Path(sys.argv[2]))
"""


def test_the_htp_library_is_passed_by_path_never_with_backend_type():
    options = QnnOptions().provider_option_strings()
    assert "backend_type" not in options  # the two together make the QNN EP fail
    library = Path(options["backend_path"])
    assert library == Path(onnxruntime_qnn.get_qnn_htp_path()) and library.is_file()
    assert library.name == ("QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so")
    with pytest.raises(ValidationError, match="backend_type: edgedepth passes backend_path"):
        QnnOptions(provider_options={"backend_type": "htp"})
    # Another QNN build stays reachable through its own library path.
    custom = QnnOptions(provider_options={"backend_path": "/opt/qairt/libQnnHtp.so"})
    assert custom.provider_option_strings()["backend_path"] == "/opt/qairt/libQnnHtp.so"


def test_minimum_onnxruntime_qnn_exposes_its_htp_library_and_qnn_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (qnn,) = (Requirement(r) for r in project["optional-dependencies"]["qnn"])
    assert qnn.name == "onnxruntime-qnn"
    oldest = min(Version(s.version) for s in qnn.specifier if s.operator == ">=")
    # 2.3.0 is the oldest release on PyPI with get_qnn_htp_path() and qnn_version recorded
    # (read from its win_arm64 wheel); no macOS wheel exists, hence the marker.
    assert oldest >= Version("2.3") and qnn.marker is not None
    assert not qnn.marker.evaluate({"sys_platform": "darwin"})
    assert Version(onnxruntime_qnn.__version__) in qnn.specifier


def npu(description: str) -> qnn.QnnTarget:
    preset = qnn.preset_for_description(description)
    return qnn.QnnTarget(None, True, description, preset)


def test_a_real_npu_gets_no_forced_chip_the_emulator_and_offline_compiles_do():
    x_elite = QnnOptions(device="snapdragon-x-elite")
    on_npu = x_elite.provider_option_strings(on_npu=True)
    assert "soc_model" not in on_npu and "htp_arch" not in on_npu
    assert on_npu["enable_htp_fp16_precision"] == "1"
    emulator = QnnOptions().provider_option_strings(on_npu=False)
    assert (emulator["soc_model"], emulator["htp_arch"]) == ("60", "73")
    offline = QnnOptions(device="snapdragon-x2-elite").provider_option_strings(
        on_npu=True, offline=True
    )
    assert (offline["soc_model"], offline["htp_arch"]) == ("88", "81")
    # The chip is read from the NPU's description (for the report and the cache name only).
    x2 = npu("Snapdragon(R) X2 Elite - X2E88100 - Qualcomm(R) Hexagon(TM) NPU")
    x1 = npu("Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Hexagon(TM) NPU")
    assert (x2.preset, x1.preset) == ("snapdragon-x2-elite", "snapdragon-x-elite")
    assert npu("Qualcomm(R) Hexagon(TM) NPU").preset is None
    assert x_elite.context_tag(x2) == "qnn-npu-snapdragon-x2-elite-fp16"
    assert QnnOptions().context_tag() == "qnn-soc60-v73-fp16"


@pytest.fixture(scope="module")
def deploy_folder(tmp_path_factory) -> Path:
    """A folder as `edgedepth deploy compile` leaves it: the float model.onnx and its EPContext
    model + context binary, compiled on this machine's HTP emulator (in a child process)."""
    from tests.onnx_models import conv_stack

    folder = tmp_path_factory.mktemp("deployed")
    conv_stack(folder / "model.onnx", layers=2, channels=8, size=32)
    subprocess.run(
        [sys.executable, "-c", COMPILE, str(folder / "model.onnx"), str(folder / "model_ctx.onnx")],
        check=True,
        capture_output=True,
    )
    (folder / "manifest.json").write_text(
        json.dumps({"run_model": "model_ctx.onnx", "reference_model": "model.onnx"})
    )
    return folder


def run_config(tmp_path: Path, model: Path, runtime: str) -> Path:
    config = tmp_path / f"{runtime}.yaml"
    config.write_text(
        "source: {type: synthetic, frames: 2, width: 48, height: 40}\n"
        "preprocess: {resize: {policy: fixed, width: 32, height: 32}}\n"
        f"backend: {{type: dav2-relative, model: '{model}', runtime: {runtime}}}\n"
        f"sinks: [{{type: npy, dir: '{tmp_path / runtime}'}}]\n"
        f"runtime: {{cache_dir: '{tmp_path / 'cache'}'}}\n"
    )
    return config


@pytest.mark.qnn
def test_runtime_qnn_on_the_emulator_says_so_once(tmp_path, deploy_folder):
    result = run_edgedepth("run", "--config", str(run_config(tmp_path, deploy_folder, "qnn")))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("NO NPU on this machine: running Qualcomm's HTP emulator") == 1
    assert "loaded context binary" in result.stderr


@pytest.mark.qnn  # the deploy folder is compiled on the emulator; "auto" finds the emulator
def test_runtime_auto_without_an_npu_runs_the_float_model_on_the_cpu(tmp_path, deploy_folder):
    result = run_edgedepth("run", "--config", str(run_config(tmp_path, deploy_folder, "auto")))
    assert result.returncode == 0, result.stderr
    assert "runtime auto → onnx-cpu (no NPU: the QNN EP offers only its HTP emulator" in (
        result.stderr
    )
    assert len(list((tmp_path / "auto").glob("*.npy"))) == 2


@pytest.mark.qnn
def test_runtime_auto_falls_back_to_the_cpu_when_no_qnn_session_can_be_built(
    tmp_path, deploy_folder
):
    # On an NPU (pretended: this machine has the emulator only) the QNN session fails here, as a
    # missing driver or a model the HTP rejects would: auto carries on on the CPU and says why.
    config = run_config(tmp_path, deploy_folder / "model.onnx", "auto")
    result = subprocess.run(
        [sys.executable, str(PRETEND_NPU), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "runtime auto → qnn (NPU: Snapdragon(R) X Elite (pretend NPU))" in result.stderr
    assert "runtime auto: no QNN session (" in result.stderr
    assert "cannot compile or load the model" in result.stderr
    assert "falling back to onnx-cpu" in result.stderr
    assert len(list((tmp_path / "auto").glob("*.npy"))) == 2
    # Asked for explicitly, qnn fails instead, in one line.
    explicit = subprocess.run(
        [sys.executable, str(PRETEND_NPU), "run", "--config",
         str(run_config(tmp_path, deploy_folder / "model.onnx", "qnn"))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert explicit.returncode == 1 and "Traceback" not in explicit.stderr
    (line,) = [x for x in explicit.stderr.splitlines() if x.startswith("error:")]
    assert "cannot compile or load the model" in line


@pytest.mark.qnn
def test_a_context_binary_from_a_newer_qnn_is_a_one_line_error(tmp_path, deploy_folder):
    import shutil

    import onnx

    newer = tmp_path / "newer"
    shutil.copytree(deploy_folder, newer)
    model = onnx.load(str(newer / "model_ctx.onnx"))
    (node,) = [n for n in model.graph.node if n.op_type == "EPContext"]
    (attribute,) = [a for a in node.attribute if a.name == "ep_sdk_version"]
    local = onnxruntime_qnn.build_and_package_info.qnn_version
    assert attribute.s.decode().startswith(f"v{local}")  # what QNN wrote
    attribute.s = b"v2.99.0.261231000000"
    onnx.save(model, str(newer / "model_ctx.onnx"))

    result = run_edgedepth("run", "--config", str(run_config(tmp_path, newer, "qnn")))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "context binary built with QNN 2.99.0, newer than QNN " + local in line
    assert f"onnxruntime-qnn {onnxruntime_qnn.__version__}" in line
    assert qnn.context_sdk_version(newer / "model_ctx.onnx") == "v2.99.0.261231000000"
