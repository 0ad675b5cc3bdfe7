"""Under CI a skip fails the test, unless tests/conftest.py lists its reason for this platform
(the QNN emulator elsewhere than Linux x86-64, POSIX-only tests on Windows, Windows-only APIs,
packages the lean Windows-on-Arm64 install lacks by design): a CI machine without a package,
a display or a permission must not pass quietly. Shown on a small test file run by pytest with
this repository's conftest as a plugin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import NO_EMULATOR, NO_POSIX_SIGNALS, ON_WINDOWS, QNN_EMULATOR, allowed_skip

REPO = Path(__file__).resolve().parent.parent

SKIPPING = f"""
import pytest

def test_a_missing_package():
    pytest.importorskip("edgedepth_no_such_package")

@pytest.mark.skipif(True, reason="no display here")
def test_an_unlisted_reason():
    pass

@pytest.mark.skipif(True, reason={NO_POSIX_SIGNALS!r})
def test_a_platform_reason():
    pass

def test_that_runs():
    pass
"""


def run_pytest(folder: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest -v on ``folder`` with this repository's conftest, with or without CI set."""
    env = {"PATH": "", "PYTHONPATH": str(REPO), **({"CI": "1"} if ci else {})}
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(folder / "pytest.ini"), "-v", "--continue-on-collection-errors", str(folder)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(re.findall(r"::(test_\w+) (PASSED|FAILED|ERROR|SKIPPED)", result.stdout))


def test_under_ci_a_skip_fails_unless_its_platform_justifies_it(tmp_path):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    # A module-level importorskip (a missing torch) would skip a whole file.
    (tmp_path / "test_module.py").write_text(
        "import pytest\npytest.importorskip('edgedepth_no_such_package')\n"
        "def test_in_a_skipped_module():\n    pass\n"
    )
    under_ci = run_pytest(tmp_path, ci=True)
    assert outcomes(under_ci) == {
        "test_a_missing_package": "FAILED",
        "test_an_unlisted_reason": "ERROR",  # a skipif mark skips in the setup
        "test_a_platform_reason": "SKIPPED" if ON_WINDOWS else "ERROR",
        "test_that_runs": "PASSED",
    }, under_ci.stdout
    assert "skipped under CI: no display here" in under_ci.stdout
    assert re.search(
        r"ERROR .*test_module.py - skipped under CI: could not import", under_ci.stdout
    )
    # Outside CI a skip stays a skip (a developer's partial install).
    elsewhere = run_pytest(tmp_path, ci=False)
    assert set(outcomes(elsewhere).values()) == {"SKIPPED", "PASSED"}
    assert "1 passed, 4 skipped" in elsewhere.stdout, elsewhere.stdout


def test_the_listed_reasons_are_platform_bound():
    assert allowed_skip(NO_EMULATOR) is not QNN_EMULATOR
    assert allowed_skip(NO_POSIX_SIGNALS) is ON_WINDOWS
    assert not allowed_skip("could not import 'numpy': No module named 'numpy'")
    assert not allowed_skip("needs Xvfb and xdotool")
