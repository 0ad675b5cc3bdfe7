"""Every row of the bad-input table (tests/bad_inputs.py) ends in one line naming the file, key
or value, with the right exit code and no traceback. ``python -m tests.bad_inputs`` prints the
table."""

from __future__ import annotations

import pytest

from tests.bad_inputs import CASES, HAS_TORCH, table, try_all

#: The table is tried in parts, so that test workers share it.
PARTS = 4


def test_the_table_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("part", range(PARTS))
def test_every_bad_input_ends_in_one_clear_line(tmp_path, part):
    cases = [case for case in CASES[part::PARTS] if HAS_TORCH or not case.needs_torch]
    outcomes = try_all(tmp_path, cases)
    print(table(outcomes))
    wrong = [
        f"{o.case.name}: {'; '.join(o.problems)} — {o.last_line}" for o in outcomes if o.problems
    ]
    assert not wrong, "\n".join(wrong)
