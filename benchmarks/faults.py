"""Fault injection for the jobs people leave running (issue 30): processes killed at random moments,
a full disk, damaged files. After every fault the same four things must hold:

* no half-written file is taken for a whole one: every JSON file of the run folder parses, a sealed
  bundle verifies (``pipeline-deploy verify``), a checkpoint is used only when its hash matches;
* nothing finished is lost: a sealed bundle stays sealed and intact, finished trials stay finished;
* the command that continues the work continues it (``--resume``, ``export``, the same ``sweep``, a
  restarted server), and the result is the one an undisturbed job gives (bit-identical weights);
* every message names what happened (the error line of the command that stopped, or continued).

Faults, each drawn at a random moment from a seeded generator:

========================  ====================================================================
``run-kill``              SIGKILL during ``pipeline run`` (start-up, training, evaluation, export, sealing)
``run-term``              SIGTERM during ``pipeline run``
``export-kill``           SIGKILL during ``pipeline export RUN`` (adding a variant to a sealed bundle)
``disk-full``             ``pipeline run`` on a file system too small for its run folder, then room made
``checkpoint-damage``     the newest checkpoint overwritten in place after a kill -9, then ``--resume``
``bundle-damage``         a byte flipped in a random file of a sealed bundle, then ``verify``/``predict``
``sweep-worker-kill``     SIGKILL of one ``--jobs 2`` worker at a random moment of the sweep
``study-write-lost``      the study's SQLite database rolled back past a trial's last write, then the sweep again
``serve-kill``            SIGKILL of ``pipeline-deploy serve`` under load, then a restarted server
========================  ====================================================================

The full file system is a tmpfs mounted for the fault where this process may mount one (root on
Linux); elsewhere the stand-in is a file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored), under
which a write past the limit fails with EFBIG ("File too large") instead of ENOSPC: the same path
through the code, another message.

    python benchmarks/faults.py [--rounds 3] [--seed 0] [--budget 1800] [--kinds run-kill,disk-full,...]

prints each fault and its outcome, then the counts: injected, survived and lost, by kind. The test
suite runs a few of them with a small budget (tests/run/test_faults.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import optuna
import torch

PYTHON, BIN = sys.executable, Path(sys.executable).parent
#: the longest any one command of a fault may take
COMMAND_SECONDS = 600

RUN = """
[pipeline]
name = "faults"
seed = 3

[data]
name = "iris"

[model]
name = "mlp"
hidden_sizes = [16, 8]
batch_norm = [true, false]
dropout = 0.2

[train]
epochs = 60
batch_size = 8
checkpoint_every = 1

[train.optimizer]
name = "adam"
lr = 0.01

[train.loss]
name = "cross_entropy"
"""

SWEEP = """
[pipeline]
name = "faults_sweep"
seed = 0

[data]
name = "moons"
samples = 200
val_size = 0.25
test_size = 0.25

[model]
name = "mlp"
hidden_sizes = [8, 8]

[train]
epochs = 300
batch_size = "full"

[train.optimizer]
name = "sgd"
lr = 0.1

[train.loss]
name = "bce_with_logits"

[sweep]
objective = "val_accuracy"
trials = 4
sampler = { name = "random", seed = 0 }
pruner = "none"
heartbeat_seconds = 1
grace_seconds = 2

[sweep.parameters]
"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }
"""


@dataclass
class Outcome:
    """One fault: what was done, what followed, whether everything held, and what (if anything) was lost."""

    kind: str
    detail: str
    survived: bool = True
    lost: str = ""
    problems: list[str] = field(default_factory=list)

    def check(self, holds: bool, problem: str) -> None:
        if not holds:
            self.survived = False
            self.problems.append(problem)


@dataclass
class Reference:
    """The undisturbed run every disturbed one must end equal to."""

    pipeline: Path
    run_dir: Path
    weights: dict[str, torch.Tensor]
    seconds: float


def pipeline(*args: str | Path, timeout: float = COMMAND_SECONDS, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "pipeline_core", *map(str, args)], capture_output=True, text=True, timeout=timeout, **popen)


def start(*args: str | Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-m", "pipeline_core", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "weights.pt", weights_only=True)


def identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def reference(work: Path) -> Reference:
    """The pipeline of the run faults, run once undisturbed (timed: the faults land within its length)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "faults.toml"
    path.write_text(textwrap.dedent(RUN).lstrip())
    started = time.perf_counter()
    done = pipeline("run", path, "--out", work / "reference", "-q")
    if done.returncode != 0:
        raise SystemExit(f"the reference run failed:\n{done.stderr}")
    return Reference(path, work / "reference", weights(work / "reference"), time.perf_counter() - started)


# -- what must hold after any fault -------------------------------------------------------------


def whole_files(run_dir: Path, outcome: Outcome) -> None:
    """No half-written file taken for a whole one: every JSON file parses, and a sealed bundle verifies."""
    for path in run_dir.rglob("*.json"):
        if path.name.startswith(".") or "bundle.failed" in path.parts or ".bundle.staging" in path.parts:
            continue  # temporary files, and the unsealed folders nothing loads
        try:
            json.loads(path.read_text())
        except ValueError as error:
            outcome.check(False, f"{path} is not whole JSON ({error})")
    if (run_dir / "bundle" / "manifest.json").is_file():
        checked = subprocess.run([BIN / "pipeline-deploy", "verify", run_dir], capture_output=True, text=True, timeout=COMMAND_SECONDS)
        outcome.check(checked.returncode == 0, f"a sealed bundle does not verify: {checked.stderr.strip()}")
    if (run_dir / "manifest.json").is_file():
        status = json.loads((run_dir / "status.json").read_text())
        outcome.check(status.get("status") == "succeeded", f"a run manifest beside status {status.get('status')!r}")


def continued_equal(run_dir: Path, ref: Reference, outcome: Outcome) -> None:
    """Continue the run with the command a person would use, and compare it with the undisturbed one."""
    status = json.loads((run_dir / "status.json").read_text()).get("status") if (run_dir / "status.json").is_file() else None
    if status != "succeeded":
        if (run_dir / "run.json").is_file():
            done = pipeline("run", run_dir, "--resume", "-q")
            outcome.detail += "; continued with --resume"
        else:  # killed before the run folder was made: nothing to continue, run it
            shutil.rmtree(run_dir, ignore_errors=True)
            done = pipeline("run", ref.pipeline, "--out", run_dir, "-q")
            outcome.detail += "; nothing to resume, run again"
        outcome.check(done.returncode == 0, f"continuing failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        if done.returncode != 0:
            outcome.lost = "the run"
            return
    outcome.check(identical(weights(run_dir), ref.weights), "the continued run's weights differ from the undisturbed run's")
    outcome.check(json.loads((run_dir / "metrics.json").read_text()) == json.loads((ref.run_dir / "metrics.json").read_text()),
                  "the continued run's metrics differ")
    whole_files(run_dir, outcome)


def stop_at(process: subprocess.Popen[str], seconds: float, signum: int) -> tuple[int, str]:
    """Send ``signum`` to ``process`` after ``seconds`` (unless it ended first); its exit code and standard error."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=COMMAND_SECONDS)
    return process.returncode, stderr


# -- the faults ---------------------------------------------------------------------------------


def run_signal(work: Path, ref: Reference, rng: random.Random, signum: int) -> Outcome:
    moment = rng.uniform(0.2, ref.seconds)
    run_dir = work / f"run-{signal.Signals(signum).name}-{moment:.2f}"
    code, stderr = stop_at(start("run", ref.pipeline, "--out", run_dir, "-q"), moment, signum)
    stage = _stage(run_dir)
    outcome = Outcome(f"run-{'kill' if signum == signal.SIGKILL else 'term'}", f"{signal.Signals(signum).name} at {moment:.2f} s "
                      f"(stage {stage}, exit {code})")
    if signum == signal.SIGTERM:  # handled in every stage: a message, status.json 'interrupted', exit 143 (or 0: it had finished)
        outcome.check(code in (0, 143), f"SIGTERM ended the run with exit {code}, expected 143")
        outcome.check(code == 0 or f"stopped by SIGTERM during stage '{stage}'" in stderr or "stopped by SIGTERM in epoch" in stderr,
                      f"exit 143 without a message naming the stop and the stage: {stderr.strip()[-300:]!r}")
    whole_files(run_dir, outcome)
    continued_equal(run_dir, ref, outcome)
    return outcome


def _stage(run_dir: Path) -> str:
    """The stage a run was in when it stopped: the last stage its events.jsonl saw start."""
    events = run_dir / "events.jsonl"
    if not events.is_file():
        return "start-up"
    stages = [json.loads(line).get("stage") for line in events.read_text().splitlines() if '"stage_start"' in line and line.endswith("}")]
    return stages[-1] if stages else "start-up"


def export_kill(work: Path, ref: Reference, rng: random.Random) -> Outcome:
    """SIGKILL while a finished run exports again with a variant: its sealed bundle is the old one or the new one, whole."""
    run_dir = Path(shutil.copytree(ref.run_dir, work / f"export-{rng.random():.6f}"))
    before = (run_dir / "bundle" / "manifest.json").read_bytes()
    moment = rng.uniform(0.2, 8.0)
    code, _ = stop_at(start("export", run_dir, "--set", 'export.optimize.variants=["int8_dynamic"]'), moment, signal.SIGKILL)
    outcome = Outcome("export-kill", f"SIGKILL at {moment:.2f} s (exit {code})")
    outcome.check((run_dir / "bundle" / "manifest.json").is_file(), "the sealed bundle lost its seal")
    replaced = (run_dir / "bundle" / "manifest.json").read_bytes() != before
    whole_files(run_dir, outcome)
    again = pipeline("export", run_dir, "--set", 'export.optimize.variants=["int8_dynamic"]')
    outcome.check(again.returncode == 0, f"exporting again failed: {again.stderr.strip()[-300:]}")
    outcome.detail += f"; bundle {'already replaced whole' if replaced else 'left as it was'}, exported again"
    whole_files(run_dir, outcome)
    outcome.check("int8_dynamic" in json.loads((run_dir / "bundle" / "metadata.json").read_text()).get("variants", {}), "the variant is missing")
    return outcome


def _limited_fs(folder: Path, size_bytes: int) -> Callable[[], None] | None:
    """Mount a tmpfs of ``size_bytes`` at ``folder`` when this process may; returns how to make it
    roomy again, or None when no mount is possible (then the file-size limit stands in)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        return None
    return lambda: subprocess.run(["mount", "-o", "remount,size=512m", str(folder)], check=True)


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def disk_full(work: Path, ref: Reference, rng: random.Random) -> Outcome:
    """The run folder's file system fills part-way: exit 1 naming the write that failed, nothing half
    written taken for whole; once there is room, --resume finishes it bit-identically."""
    size = sum(path.stat().st_size for path in ref.run_dir.rglob("*") if path.is_file())
    room = int(size * rng.uniform(0.2, 0.8))
    folder = work / f"full-{room}"
    roomy = _limited_fs(folder, room)
    run_dir = folder / "run"
    if roomy is not None:
        done = pipeline("run", ref.pipeline, "--out", run_dir, "-q")
        how, expected = f"tmpfs of {room:,} bytes", "No space left on device"
    else:  # the stand-in: no file may grow past the limit
        done = pipeline("run", ref.pipeline, "--out", run_dir, "-q", preexec_fn=_file_size_limit(max(room // 8, 4096)))
        how, expected = "RLIMIT_FSIZE stand-in", "File too large"
    outcome = Outcome("disk-full", f"{how} (exit {done.returncode})")
    try:
        outcome.check(done.returncode == 1, f"a full disk ended with exit {done.returncode}, expected 1")
        outcome.check(expected in done.stderr, f"the message does not say the disk is full: {done.stderr.strip()[-300:]!r}")
        whole_files(run_dir, outcome)
        if roomy is not None:
            roomy()
        continued_equal(run_dir, ref, outcome)
    finally:
        if roomy is not None:
            subprocess.run(["umount", str(folder)], capture_output=True)
    return outcome


def checkpoint_damage(work: Path, ref: Reference, rng: random.Random) -> Outcome:
    from pipeline_core.run import checkpoint

    run_dir = work / f"damaged-checkpoint-{rng.random():.6f}"
    process = start("run", ref.pipeline, "--out", run_dir, "-q")
    deadline = time.monotonic() + COMMAND_SECONDS
    while len(list((run_dir / "checkpoints").glob("step-*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.5))
    process.kill()
    process.communicate()
    outcome = Outcome("checkpoint-damage", "SIGKILL, then bytes overwritten in the newest checkpoint")
    newest = checkpoint.find(run_dir).path
    data = bytearray(newest.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    newest.write_bytes(bytes(data))
    resumed = pipeline("run", run_dir, "--resume", "-q")
    outcome.check(resumed.returncode == 0, f"--resume failed: {resumed.stderr.strip()[-300:]}")
    outcome.check(f"{newest.name}" in resumed.stderr and "does not match its recorded sha256" in resumed.stderr,
                  "--resume did not say which checkpoint was damaged")
    outcome.check(identical(weights(run_dir), ref.weights), "the resumed run's weights differ")
    whole_files(run_dir, outcome)
    return outcome


def bundle_damage(work: Path, ref: Reference, rng: random.Random) -> Outcome:
    run_dir = Path(shutil.copytree(ref.run_dir, work / f"damaged-bundle-{rng.random():.6f}"))
    files = sorted(path for path in (run_dir / "bundle").iterdir() if path.is_file() and path.name not in ("manifest.json",))
    victim = rng.choice(files)
    data = bytearray(victim.read_bytes())
    data[rng.randrange(len(data))] ^= 0xFF
    victim.write_bytes(bytes(data))
    outcome = Outcome("bundle-damage", f"a byte of {victim.name} flipped")
    for command in (["verify", run_dir], ["predict", run_dir, "--input", _rows(work)]):
        result = subprocess.run([BIN / "pipeline-deploy", *map(str, command)], capture_output=True, text=True, timeout=COMMAND_SECONDS)
        outcome.check(result.returncode == 2 and victim.name in result.stderr, f"`{command[0]}` did not refuse naming {victim.name}: {result.stderr[-300:]!r}")
    return outcome


def _rows(work: Path) -> Path:
    path = work / "rows.csv"
    path.write_text("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    return path


def _workers(process: subprocess.Popen[str], count: int, deadline: float) -> list[int]:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    while time.monotonic() < deadline and process.poll() is None:
        found = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    return []


def _study(folder: Path) -> optuna.Study:
    """The sweep folder's study, from the file it has: the journal file (the default) or study.db."""
    from pipeline_core.sweep.folder import SweepFolder
    from pipeline_core.sweep.storage import folder_url, plain_storage

    return optuna.load_study(study_name="faults_sweep", storage=plain_storage(folder_url(SweepFolder(folder))))


def sweep_worker_kill(work: Path, rng: random.Random) -> Outcome:
    """One of two workers killed at a random moment: the sweep completes its budget and exits 0."""
    artifacts, path = work / f"sweep-{rng.random():.6f}", work / "faults_sweep.toml"
    path.write_text(textwrap.dedent(SWEEP).lstrip())
    process = start("sweep", path, "--artifacts", artifacts, "--jobs", "2")
    workers = _workers(process, 2, time.monotonic() + 120)
    moment = rng.uniform(0.5, 15.0)
    victim = rng.choice(workers) if workers else None
    time.sleep(moment)
    if victim is not None and process.poll() is None:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            victim = None
    _, stderr = process.communicate(timeout=COMMAND_SECONDS)
    outcome = Outcome("sweep-worker-kill", f"worker {victim} killed at {moment:.1f} s (exit {process.returncode})")
    folder = artifacts / "faults_sweep" / "sweeps" / "faults_sweep"
    outcome.check(process.returncode == 0, f"the sweep ended with {process.returncode}: {stderr.strip()[-300:]}")
    if victim is not None and process.returncode == 0:
        outcome.check(f"(process {victim}) was killed by SIGKILL" in stderr or "died" not in stderr, "the dead worker was not named")
    _sweep_whole(folder, outcome)
    return outcome


def _sweep_whole(folder: Path, outcome: Outcome) -> None:
    from pipeline_core.sweep import study as studies

    trials = _study(folder).trials
    record = json.loads((folder / "sweep.json").read_text())
    outcome.check(record["state"] == "finished" and (folder / "best.toml").is_file(), f"sweep.json says {record['state']!r}")
    outcome.check(not [t for t in trials if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)],
                  "trials left running or queued")
    outcome.check(4 <= studies.budgeted(trials) <= 5, f"the budget counted {studies.budgeted(trials)} trials for 4")
    retried = [studies.replaces(t) for t in trials if studies.replaces(t) is not None]
    outcome.check(len(retried) == len(set(retried)), "a failed trial was tried again twice")


def study_write_lost(work: Path, rng: random.Random) -> Outcome:
    """The study's SQLite database rolled back to a copy taken while a trial ran (its last write lost):
    the same sweep again fails that trial by its heartbeat, tries it again once, and counts it once.
    SQLite is named with --storage (the default is a journal file): what is tested is an RDB storage's
    lost writes and its heartbeats."""
    artifacts, path = work / f"lost-write-{rng.random():.6f}", work / "faults_sweep.toml"
    path.write_text(textwrap.dedent(SWEEP).lstrip())
    folder = artifacts / "faults_sweep" / "sweeps" / "faults_sweep"
    storage = ("--storage", f"sqlite:///{folder / 'study.db'}")
    process = start("sweep", path, "--artifacts", artifacts, *storage)
    deadline = time.monotonic() + COMMAND_SECONDS
    while not list(folder.glob("trials/*/events.jsonl")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.1, 1.0))
    snapshot = folder / "study.db.snapshot"
    subprocess.run([PYTHON, "-c", "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)",
                    str(folder / "study.db"), str(snapshot)], check=True)
    process.communicate(timeout=COMMAND_SECONDS)  # the sweep finishes: its later writes are the ones lost
    for journal in folder.glob("study.db-*"):  # SQLite's journal and WAL files of the writes being lost
        journal.unlink()
    shutil.copy(snapshot, folder / "study.db")
    running = [t.number for t in _study(folder).trials if t.state == optuna.trial.TrialState.RUNNING]
    again = pipeline("sweep", path, "--artifacts", artifacts, *storage)
    outcome = Outcome("study-write-lost", f"rolled back with trial(s) {running} running; the sweep again exits {again.returncode}")
    outcome.check(again.returncode == 0, f"the sweep again failed: {again.stderr.strip()[-300:]}")
    _sweep_whole(folder, outcome)
    return outcome


def serve_kill(work: Path, ref: Reference, rng: random.Random) -> Outcome:
    """The server killed under load: no client gets a wrong answer (an error at most), and a restarted
    server answers as before."""
    from pipeline_core_deploy import predict

    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    expected = predict.open_bundle(ref.run_dir).run(rows)["probabilities"]
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": rows.ravel().tolist()}]}
    answers: list[np.ndarray] = []
    errors: list[str] = []

    def load(url: str, stop: threading.Event) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(url, json=body)
                except httpx.TransportError as error:
                    errors.append(type(error).__name__)
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    outputs = {o["name"]: o for o in response.json()["outputs"]}
                    answers.append(np.array(outputs["probabilities"]["data"], dtype=np.float32).reshape(2, 3))
                else:
                    errors.append(f"HTTP {response.status_code}")

    port = _free_port()
    server = subprocess.Popen([BIN / "pipeline-deploy", "serve", ref.run_dir, "--port", str(port), "--no-access-log"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v2/models/faults/infer"
    _ready(port)
    stop = threading.Event()
    clients = [threading.Thread(target=load, args=(url, stop)) for _ in range(4)]
    for client in clients:
        client.start()
    moment = rng.uniform(0.2, 2.0)
    time.sleep(moment)
    server.kill()
    server.wait()
    served = len(answers)
    restarted = subprocess.Popen([BIN / "pipeline-deploy", "serve", ref.run_dir, "--port", str(port), "--no-access-log"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _ready(port)
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
        restarted.send_signal(signal.SIGTERM)
        code = restarted.wait(60)
    outcome = Outcome("serve-kill", f"SIGKILL at {moment:.2f} s under load: {served} answers before, {len(answers) - served} after the "
                      f"restart, {len(errors)} refused connections")
    outcome.check(all(np.allclose(answer, expected, rtol=1e-6, atol=1e-7) for answer in answers), "a client got a wrong answer")
    outcome.check(len(answers) > served, "the restarted server answered nothing")
    outcome.check(not [error for error in errors if error.startswith("HTTP")], f"clients got error answers: {sorted(set(errors))}")
    outcome.check(code == 0, f"the restarted server's SIGTERM exit was {code}")
    return outcome


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no server on port {port}")


KINDS: dict[str, Callable[[Path, Reference, random.Random], Outcome]] = {
    "run-kill": lambda work, ref, rng: run_signal(work, ref, rng, signal.SIGKILL),
    "run-term": lambda work, ref, rng: run_signal(work, ref, rng, signal.SIGTERM),
    "export-kill": export_kill,
    "disk-full": disk_full,
    "checkpoint-damage": checkpoint_damage,
    "bundle-damage": bundle_damage,
    "sweep-worker-kill": lambda work, ref, rng: sweep_worker_kill(work, rng),
    "study-write-lost": lambda work, ref, rng: study_write_lost(work, rng),
    "serve-kill": serve_kill,
}


def campaign(work: Path, kinds: list[str], rounds: int, seed: int, budget: float, echo: Callable[[str], None] = print) -> list[Outcome]:
    """``rounds`` faults of each kind (round-robin, so a short budget still tries every kind), until
    ``budget`` seconds have passed; each outcome is echoed as it comes."""
    rng, began = random.Random(seed), time.monotonic()
    ref = reference(work)
    outcomes = []
    for round_number in range(rounds):
        for kind in kinds:
            if time.monotonic() - began > budget:
                return outcomes
            outcome = KINDS[kind](work, ref, rng)
            outcomes.append(outcome)
            verdict = "survived" if outcome.survived else "NOT SURVIVED: " + "; ".join(outcome.problems)
            echo(f"[{round_number + 1}] {outcome.kind:<18} {outcome.detail}: {verdict}")
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    lines = ["| kind | injected | survived | lost |", "|---|---|---|---|"]
    for kind in dict.fromkeys(outcome.kind for outcome in outcomes):
        mine = [outcome for outcome in outcomes if outcome.kind == kind]
        lines.append(f"| {kind} | {len(mine)} | {sum(o.survived for o in mine)} | {sum(bool(o.lost) for o in mine)} |")
    lines.append(f"| all | {len(outcomes)} | {sum(o.survived for o in outcomes)} | {sum(bool(o.lost) for o in outcomes)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="faults of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=3600, help="seconds; no new fault starts after them")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, from: " + ", ".join(KINDS))
    parser.add_argument("--work", type=Path, help="folder for the runs (kept); default: a temporary folder")
    args = parser.parse_args()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="faults-"))
    outcomes = campaign(work, args.kinds.split(","), args.rounds, args.seed, args.budget)
    print(summary(outcomes))
    sys.exit(0 if all(outcome.survived for outcome in outcomes) else 1)


if __name__ == "__main__":
    main()
