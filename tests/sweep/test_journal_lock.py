"""The journal file's lock: exclusive between processes, and released by the kernel when its holder
is killed, so that nobody waits Optuna's 30-second grace period after a SIGKILL. And its appends:
whole lines only, whatever a failed or cut-short write left, and no fsync of their own for the values
a trial reports."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from pipeline_core.sweep import journal_lock
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


def optuna_reader(journal: Path) -> optuna.Study:
    """The study as Optuna's own journal reader sees it (in a fresh storage object)."""
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))))


CUT_SHORT = b'{"op_code":8,"worker_id":"x","trial_id":0,"user_attr":{"run_d'  # a record whose write stopped part-way


def test_a_line_a_dead_write_left_half_written_is_cut_before_the_next_append(tmp_path):
    journal = tmp_path / "study.log"
    study = optuna.create_study(storage=journal_storage(journal), study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    whole = journal.read_bytes()
    with open(journal, "ab") as stream:
        stream.write(CUT_SHORT)
    assert len(optuna_reader(journal).trials) == 2  # Optuna skips a last line in progress

    optuna.load_study(study_name="s", storage=journal_storage(journal)).optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert journal.read_bytes().startswith(whole) and CUT_SHORT not in journal.read_bytes()
    assert [trial.state.name for trial in optuna_reader(journal).trials] == ["COMPLETE"] * 3


def test_without_the_cut_optuna_could_not_read_the_study_again(tmp_path):
    """What the cut prevents: Optuna's own append after such a line makes the study unreadable."""
    journal = tmp_path / "study.log"
    optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))), study_name="s")
    with open(journal, "ab") as stream:
        stream.write(CUT_SHORT)
    plain = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))))
    with pytest.raises(AttributeError):  # the new trial's record was glued to the half line: Optuna cannot find it
        plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(ValueError):  # the next record follows the broken line: reading the log fails from now on
        plain.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    with pytest.raises(ValueError):  # for every process
        optuna_reader(journal)


def test_an_append_the_disk_cuts_short_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    journal = tmp_path / "study.log"
    study = optuna.create_study(storage=journal_storage(journal), study_name="s")
    trial = study.ask()
    before = journal.read_bytes()
    real_write = os.write

    def disk_full(descriptor: int, data: bytes) -> int:
        if descriptor > 2 and len(data) > 8:
            real_write(descriptor, bytes(data[: len(data) // 2]))  # half of it reaches the file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(journal_lock.os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        study.tell(trial, 0.5)
    monkeypatch.undo()
    assert journal.read_bytes() == before  # no partial line
    study.tell(trial, 0.5)  # space again: the same write goes through
    assert [t.value for t in optuna_reader(journal).trials] == [0.5]


def test_reported_values_are_appended_without_an_fsync_of_their_own(tmp_path, monkeypatch):
    journal = tmp_path / "study.log"
    study = optuna.create_study(storage=journal_storage(journal), study_name="s")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_lock.os, "fsync", lambda descriptor: synced.append(descriptor) or real_fsync(descriptor))
    trial = study.ask()
    after_ask = len(synced)
    for step in range(5):
        trial.report(step / 10, step)
    assert len(synced) == after_ask  # appended, not fsynced
    assert [t.intermediate_values for t in optuna_reader(journal).trials] == [{step: step / 10 for step in range(5)}]  # yet seen at once
    trial.set_user_attr("epochs", 5)
    study.tell(trial, 0.4)
    assert len(synced) == after_ask + 2  # every other record is fsynced, carrying the values before it to disk
    assert after_ask >= 1
