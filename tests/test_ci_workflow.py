"""The Windows-on-Arm64 workflow cannot run here: its syntax is checked against GitHub's
workflow schema (check-jsonschema, offline) and its content against what it must do: an arm64
CPython 3.12, the lean runtime without torch or OpenCV, the tests that need neither."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "windows-arm64.yml"
SELECTION = '-m "not torch and not opencv and not display"'


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


def test_the_workflow_runs_the_lean_runtime_on_arm64_python_312():
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    assert job["runs-on"] == "windows-11-arm"
    setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    (python,) = [step["with"] for step in setup]
    assert python == {"python-version": "3.12", "architecture": "arm64"}
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'pip install -e ".[qnn,hub,eval,test]"' in commands
    assert "edgedepth doctor" in commands and f"python -m pytest -q {SELECTION}" in commands

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    installed = {Requirement(r).name for extra in ("qnn", "hub", "eval", "test")
                 for r in extras[extra]}  # fmt: skip
    assert not installed & {"torch", "opencv-python", "transformers", "safetensors"}
    markers = {m.split(":")[0] for m in project["tool"]["pytest"]["ini_options"]["markers"]}
    assert {"torch", "opencv", "display", "qnn"} <= markers
