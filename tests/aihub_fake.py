"""A stand-in for Qualcomm AI Hub at the `qai_hub` client boundary (the service cannot be
reached here). It takes the same calls as the installed client (the tests compare signatures),
returns the client's own `JobStatus` and `Device` types, moves jobs through the service's states
over successive polls, "compiles" for real with onnxruntime-qnn on this machine (in a
subprocess), profiles with the service's dictionary layout and answers inference jobs with a
dict of lists of arrays computed by ONNX Runtime."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from qai_hub.client import Device, JobStatus

State = JobStatus.State
COMPILE = """
import sys
from pathlib import Path
from edgedepth.ort_session import QnnOptions, qnn_session
qnn_session(Path(sys.argv[1]), QnnOptions(), Path(sys.argv[2]))
"""


@dataclass
class FakeJob:
    job_id: str
    states: list[Any]
    options: str = ""
    polls: int = 0

    @property
    def url(self) -> str:
        return f"https://workbench.aihub.qualcomm.com/jobs/{self.job_id}/"

    def get_status(self) -> JobStatus:
        state = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        message = "compilation failed: unsupported op" if state is State.FAILED else None
        return JobStatus(state=state, message=message)


@dataclass
class FakeCompileJob(FakeJob):
    artifact: Path | None = None

    def get_target_model(self) -> Any:
        return {"target_model_of": self.job_id}

    def download_target_model(self, filename: str) -> str | None:
        target = Path(filename + ".zip")
        with zipfile.ZipFile(target, "w") as archive:
            for file in self.artifact.iterdir():
                archive.write(file, f"model.onnx/{file.name}")
        return str(target)


@dataclass
class FakeProfileJob(FakeJob):
    def download_profile(self) -> dict[str, Any]:
        return {
            "execution_summary": {
                "estimated_inference_time": 26725,  # µs
                "inference_memory_peak_range": (12 * 2**20, 30 * 2**20),
            },
            "execution_detail": [{"name": f"layer{i}", "compute_unit": "NPU"} for i in range(40)]
            + [{"name": "layer40", "compute_unit": "CPU"}],
        }


@dataclass
class FakeInferenceJob(FakeJob):
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def download_output_data(self) -> dict[str, list[np.ndarray]]:
        return self.outputs


class FakeHub:
    """The functions of `qai_hub` that edgedepth calls, with their signatures."""

    Device = Device

    def __init__(self, workdir: Path, fail_compile: bool = False) -> None:
        self.workdir = workdir
        self.fail_compile = fail_compile
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[str, FakeJob] = {}
        self.uploaded: Path | None = None

    def _new(self, job: FakeJob) -> Any:
        self.jobs[job.job_id] = job
        return job

    def submit_compile_job(
        self, model, device, name=None, input_specs=None, options="", single_compile=True,
        calibration_data=None, retry=True, project=None,
    ):  # fmt: skip
        call = {"model": model, "device": device, "options": options, "input_specs": input_specs}
        self.calls.append(("compile", call))
        self.uploaded = Path(model)
        states = [State.CREATED, State.OPTIMIZING_MODEL, State.OPTIMIZING_MODEL]
        if self.fail_compile:
            return self._new(FakeCompileJob("jcmp1", [*states, State.FAILED], options))
        artifact = self.workdir / "compiled"
        artifact.mkdir(exist_ok=True)
        shutil.copyfile(model, artifact / "source.onnx")
        subprocess.run(
            [sys.executable, "-c", COMPILE, str(artifact / "source.onnx"),
             str(artifact / "model_ctx.onnx")], check=True, capture_output=True,
        )  # fmt: skip
        (artifact / "source.onnx").unlink()
        return self._new(FakeCompileJob("jcmp1", [*states, State.SUCCESS], options, 0, artifact))

    def submit_profile_job(self, model, device, name=None, options="", retry=True, project=None):
        self.calls.append(("profile", {"model": model, "device": device, "options": options}))
        states = [State.PROVISIONING_DEVICE, State.MEASURING_PERFORMANCE, State.SUCCESS]
        return self._new(FakeProfileJob("jprof1", states, options))

    def submit_inference_job(
        self, model, device, inputs=None, name=None, options="", retry=True, profile=True,
        project=None,
    ):  # fmt: skip
        self.calls.append(("inference", {"model": model, "device": device, "inputs": inputs}))
        session = onnxruntime.InferenceSession(str(self.uploaded))
        ((name_, frames),) = inputs.items()
        # The device runs fp16: close to the CPU, not identical.
        outputs = [
            session.run(None, {name_: frame})[0].astype(np.float16).astype(np.float32)
            for frame in frames
        ]
        states = [State.PROVISIONING_DEVICE, State.RUNNING_INFERENCE, State.SUCCESS]
        return self._new(FakeInferenceJob("jinf1", states, options, 0, {"output_0": outputs}))

    def get_job(self, job_id, job_type=None):
        if job_id not in self.jobs:
            raise ValueError(f"Job ID '{job_id}' could not be found.")
        return self.jobs[job_id]
