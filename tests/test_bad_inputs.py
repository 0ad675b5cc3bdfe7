"""Every row of the bad-input table (tests/bad_inputs.py) ends in one line naming the file, key
or value, with the right exit code and no traceback."""

from __future__ import annotations

from tests.bad_inputs import CASES, HAS_TORCH, table, try_all


def test_every_bad_input_ends_in_one_clear_line(tmp_path):
    cases = [case for case in CASES if HAS_TORCH or not case.needs_torch]
    outcomes = try_all(tmp_path, cases)
    print(table(outcomes))
    wrong = [
        f"{o.case.name}: {'; '.join(o.problems)} — {o.last_line}" for o in outcomes if o.problems
    ]
    assert not wrong, "\n".join(wrong)
    assert len(outcomes) >= 40
