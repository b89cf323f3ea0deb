"""Issue 30's fault-injection campaign (benchmarks/faults.py) with a small budget: a run killed with
SIGKILL at a random moment and continued, a run on a file system that fills up, an export killed
part-way, a server killed under load. Each fault must be survived: nothing half-written taken for
whole, nothing finished lost, the continuing command ending equal to an undisturbed run. The full
campaign (every kind, several rounds) is `python benchmarks/faults.py`; the sweep's faults have
their own tests in tests/sweep/test_sweep.py, the damaged checkpoint in tests/training/test_engine.py."""

from __future__ import annotations

import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import faults  # noqa: E402

#: the kinds the suite runs, and the seconds after which it starts no new fault
KINDS, BUDGET = ["run-kill", "disk-full", "export-kill", "serve-kill"], 90


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the faults use Linux's signals, /proc and file-size limits")
def test_a_small_fault_campaign_is_survived(tmp_path):
    lines: list[str] = []
    outcomes = faults.campaign(tmp_path, KINDS, rounds=1, seed=20261206, budget=BUDGET, echo=lines.append)
    assert [outcome.kind for outcome in outcomes][:1] == ["run-kill"], "the budget ran out before the first fault"
    failed = [f"{outcome.kind}: {outcome.detail}: {'; '.join(outcome.problems)}" for outcome in outcomes if not outcome.survived]
    assert not failed, "\n".join(failed)
    assert not [outcome for outcome in outcomes if outcome.lost]
    assert "| all | " in faults.summary(outcomes)
