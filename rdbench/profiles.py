"""Run profiles: how much work each cell does.

``smoke``   tiny budgets that check the plumbing, not accuracy; used by the tests.
``default`` budgets that reach the benchmarks' accuracy on the analytic sources.
``paper``   the paper's budgets; meant for a GPU.

Method budgets (steps, sample sizes) live in each plugin record's ``profiles`` table; the
runner-level knobs below apply to every cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdbench.records import PROFILES


@dataclass(frozen=True)
class RunnerProfile:
    #: realizations a codec is evaluated on (``test`` split)
    n_test: int
    #: seconds before a cell is stopped and recorded as an error (None: no limit)
    cell_timeout: float | None


RUNNER_PROFILES: dict[str, RunnerProfile] = {
    "smoke": RunnerProfile(n_test=500, cell_timeout=300),
    "default": RunnerProfile(n_test=2000, cell_timeout=3600),
    "paper": RunnerProfile(n_test=10000, cell_timeout=None),
}
assert set(RUNNER_PROFILES) == set(PROFILES)
