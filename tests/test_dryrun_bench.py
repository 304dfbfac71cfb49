"""The dry-run accuracy benchmark's scoring: which recommendations count as close to the optimum."""

from __future__ import annotations

import pytest

from cherrypick._dryrun_bench import Outcome, _summary


def _outcome(gap: float | None, late: bool = False) -> Outcome:
    return Outcome("alexnet-10class", 0.3, 0, gap, gap, 8, False, late)


@pytest.mark.parametrize(
    ("gap", "late", "close"),
    [
        (0.0, False, True),
        (0.05, False, True),
        (0.051, False, False),
        (None, False, False),
        # Cheaper than the optimum only because it truly misses the deadline: a miss, not a hit.
        (-0.10, True, False),
    ],
)
def test_a_recommendation_is_close_only_within_5_percent_and_truly_in_time(
    gap: float | None, late: bool, close: bool
) -> None:
    assert _outcome(gap, late).close is close


def test_summary_counts_truly_late_recommendations_as_misses() -> None:
    outcomes = [_outcome(0.0), _outcome(0.0), _outcome(-0.2, late=True), _outcome(0.2)]
    line = _summary("case", outcomes)
    assert "within 5%:  50.0%" in line
    assert "(truly 1)" in line
