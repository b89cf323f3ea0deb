"""The journal file's lock: exclusive between processes, and released by the kernel when its holder
is killed, so that nobody waits Optuna's 30-second grace period after a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest

from pipeline_core.sweep.journal_lock import SUFFIX, KernelFileLock, journal_storage

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock: Windows uses Optuna's own lock")

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pipeline_core.sweep.journal_lock import KernelFileLock
    lock = KernelFileLock(Path(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
""")


def holder(journal: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it ``seconds``; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def seconds_to_acquire(journal: Path) -> float:
    lock = KernelFileLock(journal)
    started = time.monotonic()
    lock.acquire()
    waited = time.monotonic() - started
    lock.release()
    return waited


def test_a_writer_waits_while_another_process_holds_the_lock(tmp_path):
    journal = tmp_path / "study.log"
    process = holder(journal, 1.0)
    try:
        assert seconds_to_acquire(journal) >= 0.5  # it waited for the holder to let go
    finally:
        process.wait(timeout=30)
    assert (tmp_path / f"study.log{SUFFIX}").is_file()


def test_a_holder_killed_with_sigkill_releases_the_lock(tmp_path):
    journal = tmp_path / "study.log"
    process = holder(journal, 600)
    waited: list[float] = []
    waiter = threading.Thread(target=lambda: waited.append(seconds_to_acquire(journal)), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert not waited  # still held
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    waiter.join(timeout=5)
    assert waited and waited[0] < 5  # not Optuna's 30 s grace period: the kernel released it
    assert seconds_to_acquire(journal) < 1


def test_a_study_on_the_locked_journal_is_an_ordinary_optuna_study(tmp_path):
    journal = tmp_path / "study.log"
    study = optuna.create_study(storage=journal_storage(journal), study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    again = optuna.load_study(study_name="s", storage=journal_storage(journal))
    assert [trial.value for trial in again.trials] == [trial.value for trial in study.trials] and len(again.trials) == 3
