"""Every row of the bad-input table (tests/bad_inputs.py) ends in one line naming the file, key
or value, with the right exit code and no traceback; and `check` fails exactly as `run` does
for every row that fails at start. ``python -m tests.bad_inputs`` prints the table."""

from __future__ import annotations

import pytest

from tests.bad_inputs import CASES, runnable, table, try_all

#: The table is tried in parts, so that test workers share it.
PARTS = 6


def test_the_table_is_large():
    assert len(CASES) >= 80


@pytest.mark.parametrize("part", range(PARTS))
def test_every_bad_input_ends_in_one_clear_line(tmp_path, part):
    outcomes = try_all(tmp_path, runnable(CASES)[part::PARTS])
    print(table(outcomes, tmp_path))
    wrong = [
        f"{o.case.name}: {'; '.join(o.problems)} — {o.last_line}" for o in outcomes if o.problems
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("part", range(PARTS))
def test_check_fails_as_run_does_for_every_row_that_fails_at_start(tmp_path, part):
    """`check` opens what `run` opens first (the source, the model and its inputs, the
    caches, the endpoints, the output files) and processes nothing: a row that fails at start
    fails in `check` with the same exit code and the same line."""
    (tmp_path / "run").mkdir()
    (tmp_path / "check").mkdir()
    as_run = [o for o in try_all(tmp_path / "run", runnable(CASES)[part::PARTS], command="run")]
    cases = [o.case for o in as_run if o.fails_at_start]
    as_run = [o for o in as_run if o.fails_at_start]
    as_check = try_all(tmp_path / "check", cases, command="check")
    differ = [
        f"{r.case.name}:\n  run   {r.exit_code} {r.same_line}\n  check {c.exit_code} {c.same_line}"
        for r, c in zip(as_run, as_check, strict=True)
        if (r.exit_code, r.same_line) != (c.exit_code, c.same_line)
    ]
    assert cases
    assert not differ, "\n".join(differ)
