"""Data-parallel runs on this machine's CPU: 2 processes with gloo on loopback, launched for real by
`pipeline run --nproc-per-node 2` through torchrun's launcher."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline_core.run.distributed import synchronized_batchnorm

from helpers import IRIS_FAST, run_file

PIPELINE = str(Path(sys.executable).parent / "pipeline")
DDP = IRIS_FAST.replace("batch_norm = [true, false]", "batch_norm = false").replace(
    "batch_size = 16", 'batch_size = 16\nstrategy = "ddp"\nnproc_per_node = 2\ncheckpoint_every = 1'
).replace("epochs = 3", "epochs = 6")


def _pipeline_run(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PIPELINE, "run", *args], capture_output=True, text=True, timeout=timeout, env=env)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "weights.pt", weights_only=True)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tolerance: float = 1e-5) -> float:
    assert a.keys() == b.keys()
    difference = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert difference <= tolerance, difference
    return difference


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(DDP).lstrip())
    return path


@pytest.fixture(scope="module")
def single(pipeline_file, tmp_path_factory):
    """The same pipeline in one process (same global batch of 16): run here, in the test process, as
    ``pipeline run FILE --set train.strategy=single`` runs it (the data-parallel runs it is compared
    with are the ones launched for real)."""
    out = tmp_path_factory.mktemp("single") / "run"
    threads = torch.get_num_threads()
    run = run_file(pipeline_file, out, "train.strategy=single")
    torch.set_num_threads(threads)  # a run sets torch's thread count; keep it from leaking into later tests
    assert json.loads((out / "status.json").read_text())["status"] == "succeeded" and run.run_dir == out
    return out


def test_two_processes_match_one_with_the_same_global_batch(pipeline_file, single, tmp_path):
    out = tmp_path / "run"
    result = _pipeline_run(str(pipeline_file), "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    _close(_weights(out), _weights(single))
    rows = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (single / "events.jsonl").read_text().splitlines()]
    losses = [row["train_loss"] for row in rows if row["event"] == "epoch"]
    assert losses == pytest.approx([row["train_loss"] for row in reference if row["event"] == "epoch"], rel=1e-5)
    # every file once, written by rank 0 only
    assert [row["event"] for row in rows].count("pipeline_start") == 1
    assert len(losses) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["processes"] == 2
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] == pytest.approx(
        json.loads((single / "metrics.json").read_text())["test"]["accuracy"])
    assert all(entry["passed"] for entry in json.loads((out / "export_report.json").read_text()).values())


def _workers(marker: str) -> dict[int, int]:
    """{local rank: pid} of the worker processes whose command line mentions ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker not in command:
            continue
        for item in environment:
            if item.startswith(b"LOCAL_RANK="):
                found[int(item.split(b"=")[1])] = int(entry.name)
    return found


def test_killing_one_rank_fails_the_run_cleanly(pipeline_file, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen([PIPELINE, "run", str(pipeline_file), "--out", str(out), "-q", "--set", "train.epochs=400"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "latest.json").exists():
        assert time.monotonic() < deadline and process.poll() is None, "training never started"
        time.sleep(0.05)
    workers = _workers(str(out))
    assert set(workers) == {0, 1}
    os.kill(workers[1], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 1
    assert stderr.count("distributed run failed") == 1
    assert "rank 1 was killed by signal 9" in stderr
    assert "Traceback" not in stderr.split("error: distributed run failed")[-1]
    assert not (out / "manifest.json").exists()
    assert json.loads((out / "status.json").read_text())["status"] in ("running", "failed", "interrupted")
    assert not _workers(str(out))  # no process was left behind



@pytest.mark.parametrize("rank0, expected", [
    ("peer", "rank 1 was killed by signal 9 (SIGKILL)"),  # rank 0 noticed first and, a peer failure, said nothing
    ("sigterm", "rank 1 was killed by signal 9 (SIGKILL)"),  # rank 0 stopped by the launcher in the same second
    ("stopped", "rank 1 was killed by signal 9 (SIGKILL)"),  # rank 0 caught the launcher's SIGTERM and stopped cleanly (143)
])
def test_the_launcher_names_the_rank_that_failed_not_the_ones_that_followed(monkeypatch, rank0, expected):
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from pipeline_core.errors import PipelineError
    from pipeline_core.run import distributed

    code = {"peer": distributed.PEER_LOST_EXIT, "sigterm": -signal.SIGTERM, "stopped": 128 + signal.SIGTERM}[rank0]
    failures = {0: ProcessFailure(0, 100, code, "<none>"), 1: ProcessFailure(1, 101, -signal.SIGKILL, "<none>")}
    failures[0].timestamp = failures[1].timestamp  # second-resolution timestamps: a tie

    def failing(args):
        raise ChildFailedError("pipeline_core", failures)

    monkeypatch.setattr(torchrun, "run", failing)
    with pytest.raises(PipelineError) as caught:
        distributed.launch(["run", "x.toml"], 2, "1", None, "none")
    assert expected in str(caught.value) and caught.value.exit_code == 1 and not caught.value.reported


def test_a_rank_that_only_lost_its_peers_exits_with_the_code_the_launcher_reads(monkeypatch):
    from pipeline_core.cli import report_error
    from pipeline_core.run import distributed

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(distributed, "launched", lambda: True)
    lost = RuntimeError("[gloo] Connection closed by peer")
    assert report_error(lost, verbose=False) == distributed.PEER_LOST_EXIT
    assert report_error(ValueError("a real error"), verbose=False) == 1


LEAVE = """
import json, os, sys
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from pipeline_core.run.distributed import join, leave

def threads():
    return len(os.listdir("/proc/self/task"))

torch.set_num_threads(1)
nn.Linear(4, 2)(torch.randn(8, 4)).sum().backward()  # torch's own threads exist before counting
before = threads()
ranks = join("ddp", torch.device("cpu"))
model = DistributedDataParallel(nn.Linear(4, 2))
model(torch.randn(8, 4)).sum().backward()
total = torch.ones(1)
ranks.sum(total)
during = threads()
cycle = [model]
cycle.append(cycle)  # held in a reference cycle, as compiled modules and hook closures hold it
del model, cycle
freed = leave()
report = {"rank": ranks.rank, "total": total.item(), "before": before, "during": during, "after": threads(), "freed": freed}
with open(os.path.join(sys.argv[1], f"rank{ranks.rank}.json"), "w") as file:
    json.dump(report, file)
"""


def test_leaving_frees_the_process_group_and_joins_its_threads(tmp_path):
    """Left to interpreter shutdown, gloo's threads abort a finished run now and then (SIGABRT while
    releasing a collective's tensors); leave() frees the group, so its threads end before that."""
    script = tmp_path / "leave.py"
    script.write_text(LEAVE)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for report in reports:
        assert report["total"] == 2.0  # the group really worked across both processes
        assert report["during"] > report["before"]  # gloo's threads were running ...
        assert report["freed"] and report["after"] == report["before"], report  # ... and are gone


CRASH = '''
import os
from pipeline_core import hookimpl

@hookimpl
def on_epoch_end(run, epoch, metrics):
    if str(epoch) == os.environ.get("CRASH_AT_EPOCH"):
        raise RuntimeError(f"crash at epoch {epoch}")
'''


@pytest.mark.parametrize("first, second", [(2, 1), (1, 2)])
def test_resume_with_a_different_number_of_processes(pipeline_file, single, tmp_path, first, second):
    (tmp_path / "crash.py").write_text(CRASH)
    path = tmp_path / "pipeline.toml"
    path.write_text(pipeline_file.read_text().replace("seed = 3", f'seed = 3\nplugins = ["{tmp_path / "crash.py"}"]'))
    out = tmp_path / "run"
    crashed = _pipeline_run(str(path), "--out", str(out), "-q", f"--nproc-per-node={first}", env={**os.environ, "CRASH_AT_EPOCH": "4"})
    assert crashed.returncode == 1 and "crash at epoch 4" in crashed.stderr
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["epoch"] == 3
    resumed = _pipeline_run(str(out), "--resume", "-q", f"--nproc-per-node={second}")
    assert resumed.returncode == 0, resumed.stderr
    _close(_weights(out), _weights(single))
    history = (out / "history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == [1, 2, 3, 4, 5, 6]


def test_synchronized_batchnorm_trains_the_original_layers():
    """While training, BatchNorm layers are SyncBatchNorm sharing the originals' tensors; afterwards the
    originals are back (what is saved and exported) and hold what was learned."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 3))
    twin = copy.deepcopy(model)
    originals = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    inputs, targets = torch.randn(32, 4), torch.randint(0, 3, (32,))

    def step(network: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(network(inputs), targets).backward()
        optimizer.step()

    with synchronized_batchnorm(model) as synced:
        assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == 2
        assert not any(type(m) is nn.BatchNorm1d for m in synced.modules())
        for _ in range(3):  # no process group here: SyncBatchNorm computes plain BatchNorm
            step(synced, optimizers[0])
            step(twin, optimizers[1])
    assert [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == originals
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert originals[0].num_batches_tracked.item() == 3
    trained, reference = model.state_dict(), twin.state_dict()
    assert trained.keys() == reference.keys()
    for key in trained:
        torch.testing.assert_close(trained[key], reference[key], msg=key)


@pytest.mark.parametrize("strategy, message", [
    ("single", "train.sync_batchnorm synchronizes BatchNorm statistics across data-parallel processes; it needs train.strategy = 'ddp'"),
    ("ddp", "train.sync_batchnorm needs CUDA devices (PyTorch's SyncBatchNorm has no cpu implementation)"),
])
def test_sync_batchnorm_is_refused_where_it_cannot_work(pipeline_file, tmp_path, strategy, message):
    result = _pipeline_run(str(pipeline_file), "--out", str(tmp_path / "run"), "-q", "--set", "pipeline.device=cpu",
                  "--set", f"train.strategy={strategy}", "--set", "train.sync_batchnorm=true",
                  *(["--nproc-per-node=2"] if strategy == "ddp" else []))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL, one process per GPU)")
def test_sync_batchnorm_on_two_gpus_matches_one_process_with_batchnorm(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(IRIS_FAST.replace("batch_size = 16", 'batch_size = 16\nstrategy = "ddp"')).lstrip())
    one, two = tmp_path / "one", tmp_path / "two"
    assert _pipeline_run(str(path), "--out", str(one), "-q", "--set", "pipeline.device=cuda").returncode == 0
    result = _pipeline_run(str(path), "--out", str(two), "-q", "--set", "pipeline.device=cuda", "--set", "train.sync_batchnorm=true",
                  "--nproc-per-node=2")
    assert result.returncode == 0, result.stderr
    _close(_weights(two), _weights(one), tolerance=1e-4)
