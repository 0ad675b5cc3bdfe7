"""The Windows workflow cannot run here: its syntax is checked against GitHub's workflow schema
(check-jsonschema, offline), its content against what it must do (an arm64 CPython 3.12 with
`.[all]`, which leaves out what has no win_arm64 wheel; an x64 job with torch and OpenCV; doctor
on the console and redirected; `edgedepth cameras`; the report kept), and its steps are run
under the shell GitHub runs them with, `bash --noprofile --norc -eo pipefail`, with the commands
replaced by stubs: a step stops at whichever of its commands fails."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

pytest.importorskip("check_jsonschema")

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "windows.yml"
SELECTION = '-m "not torch and not opencv and not display"'
#: What GitHub runs a `shell: bash` step with (the docs' "bash --noprofile --norc -eo pipefail
#: {0}"); the Windows default, PowerShell, would run a step to its end.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
#: Windows on Arm64 as environment markers see it (the ARM64 build of CPython 3.12).
WIN_ARM64 = {
    "sys_platform": "win32", "platform_machine": "ARM64", "platform_system": "Windows",
    "os_name": "nt", "python_version": "3.12", "python_full_version": "3.12.8",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}  # fmt: skip


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         str(path)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_workflow_is_a_valid_github_workflow(tmp_path):
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # the linter does check: a job without runs-on fails
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:"))
    assert lint(broken).returncode != 0


def run_steps() -> list[tuple[str, dict]]:
    """(job, step) of every step that runs commands."""
    return [(name, step) for name, job in workflow()["jobs"].items()
            for step in job["steps"] if "run" in step]  # fmt: skip


def test_every_step_runs_in_bash():
    defaults = workflow().get("defaults", {}).get("run", {}).get("shell")
    for name, step in run_steps():
        job_default = workflow()["jobs"][name].get("defaults", {}).get("run", {}).get("shell")
        assert step.get("shell", job_default or defaults) == "bash", (name, step.get("name"))


def stubbed(tmp_path: Path, names: set[str]) -> dict[str, str]:
    """Stubs for ``names`` on PATH: each logs its command line and fails (exit 3) when it is
    the FAIL_AT-th command of the step."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        stub = bin_dir / name
        stub.write_text(
            "#!/bin/bash\n"
            'echo "$(basename "$0") $*" >> "$STUB_LOG"\n'
            '[ "$(wc -l < "$STUB_LOG")" = "$FAIL_AT" ] && exit 3\n'
            "exit 0\n"
        )
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def run_step(script: str, folder: Path, env: dict[str, str], fail_at: int) -> tuple[int, list]:
    """Run a step's script as GitHub does; (exit code, the stubbed commands it ran)."""
    (folder / "step.sh").write_text(script)
    log = folder / "log"
    log.write_text("")
    done = subprocess.run(
        [*BASH, str(folder / "step.sh")], cwd=folder, timeout=60,
        env={**env, "STUB_LOG": str(log), "FAIL_AT": str(fail_at)},
    )  # fmt: skip
    return done.returncode, log.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_failing_command_fails_its_step_and_nothing_after_it_runs(tmp_path):
    multi_line = [(name, step) for name, step in run_steps() if step["run"].count("\n") > 1]
    assert len(multi_line) >= 6  # install, checks, doctor, cameras in both jobs
    env = {**os.environ, **stubbed(tmp_path, {"python", "edgedepth", "tail"})}
    for name, step in multi_line:
        code, commands = run_step(step["run"], tmp_path, env, 0)  # nothing fails
        lines = [line for line in step["run"].splitlines() if line.strip()]
        assert code == 0 and len(commands) == len(lines), (name, step["name"], commands)
        for position in range(1, len(commands) + 1):  # the first, a middle one, the last
            code, ran = run_step(step["run"], tmp_path, env, position)
            assert code == 3 and ran == commands[:position], (name, step["name"], position)


def extras_on(environment: dict[str, str], *wanted: str) -> set[str]:
    """The distributions ``pip install .[wanted]`` asks for where markers see ``environment``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras, found = project["optional-dependencies"], set()

    def expand(requirements: list[str], extra: str) -> None:
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(
                {**environment, "extra": extra}
            ):
                continue
            if requirement.name == "edgedepth":
                for name in requirement.extras:
                    expand(extras[name], name)
            else:
                found.add(requirement.name.lower())

    expand(project["dependencies"], "")
    for name in wanted:
        expand(extras[name], name)
    return found


def test_the_arm64_job_installs_all_without_what_has_no_win_arm64_wheel():
    jobs = workflow()["jobs"]
    arm64, x64 = jobs["arm64"], jobs["x64"]
    assert arm64["runs-on"] == "windows-11-arm" and x64["runs-on"].startswith("windows")
    setup = [s["with"] for s in arm64["steps"] if s.get("uses", "").startswith("actions/setup-py")]
    assert setup == [{"python-version": "3.12", "architecture": "arm64"}]
    commands = "\n".join(step.get("run", "") for step in arm64["steps"])
    assert 'pip install -e ".[all,test]"' in commands
    assert f"python -m pytest -q {SELECTION}" in commands

    on_arm64 = extras_on(WIN_ARM64, "all", "test")
    assert not on_arm64 & {"torch", "opencv-python", "eclipse-zenoh", "transformers"}
    assert {"onnxruntime-qnn", "qai-hub", "winrt-windows.media.capture.frames", "moto"} <= on_arm64
    on_x64 = extras_on({**WIN_ARM64, "platform_machine": "AMD64"}, "all")
    assert {"torch", "opencv-python", "eclipse-zenoh", "winrt-runtime"} <= on_x64
    on_linux = extras_on({**WIN_ARM64, "sys_platform": "linux", "platform_system": "Linux",
                          "os_name": "posix", "platform_machine": "x86_64"}, "all")  # fmt: skip
    assert "torch" in on_linux and not any(name.startswith("winrt") for name in on_linux)

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    markers = {m.split(":")[0] for m in project["tool"]["pytest"]["ini_options"]["markers"]}
    assert {"torch", "opencv", "display", "qnn"} <= markers


def test_doctor_and_cameras_run_redirected_and_the_reports_are_kept():
    for name, job in workflow()["jobs"].items():
        commands = "\n".join(step.get("run", "") for step in job["steps"])
        assert "edgedepth doctor\n" in commands, name  # on the console
        assert "edgedepth doctor > doctor.txt" in commands, name
        assert "edgedepth cameras\n" in commands and "edgedepth cameras --json" in commands, name
        (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-a")]
        assert upload["if"] == "always()"
        kept = upload["with"]["path"].split()
        assert {"doctor.txt", "doctor.json", "cameras.json"} <= set(kept), name
    arm64 = "\n".join(step.get("run", "") for step in workflow()["jobs"]["arm64"]["steps"])
    assert "PYTHONIOENCODING=cp437 edgedepth doctor >" in arm64
    assert "mf['error'] is None" in arm64  # Media Foundation's enumeration really ran
