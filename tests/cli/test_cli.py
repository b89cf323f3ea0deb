"""The command line through click's CliRunner: exit codes, messages, no tracebacks for user mistakes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from pipeline_core.cli import cli

from helpers import IRIS_FAST, invoke


@pytest.fixture(scope="module")
def four_epochs(tmp_path_factory) -> tuple[Result, Path]:
    """``pipeline run FILE --out DIR --set train.epochs=4`` (no progress option), run once for the
    tests that read its output and run folder: (the result, DIR)."""
    folder = tmp_path_factory.mktemp("cli_run")  # a name without "epoch" or "stage", which the output must not hold
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(IRIS_FAST).lstrip(), encoding="utf-8")
    threads = torch.get_num_threads()
    result = invoke("run", path, "--out", folder / "run", "--set", "train.epochs=4")
    torch.set_num_threads(threads)  # a run sets torch's thread count; keep it from leaking into later tests
    return result, folder / "run"


def test_progress_is_quiet_off_a_terminal_and_lines_on_request(four_epochs, write_pipeline, tmp_path):
    quiet, _ = four_epochs
    assert quiet.exit_code == 0, quiet.output
    assert "epoch" not in quiet.output and "stage" not in quiet.output  # CliRunner output is not a terminal
    lines = invoke("run", write_pipeline(), "--out", tmp_path / "lines", "--set", "train.epochs=4", "--progress", "lines")
    assert "stage train" in lines.output
    assert "epoch 4/4  train_loss" in lines.output and "epochs/s" in lines.output


def test_run_prints_a_summary(four_epochs):
    result, run_dir = four_epochs
    assert result.exit_code == 0, result.output
    assert "iris_fast: metrics" in result.output
    assert "export checks (bundle/)" in result.output
    assert result.output.count("passed") == 3
    assert f"run folder: {run_dir}" in result.output.replace("\n", "")
    assert len(open(run_dir / "history.csv").read().splitlines()) == 5


def test_quiet_run_has_no_progress(write_pipeline, tmp_path):
    result = invoke("run", write_pipeline(), "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0
    assert "epoch" not in result.output
    assert "metrics" in result.output


def test_bad_config_exits_2_without_traceback(write_pipeline, tmp_path):
    path = write_pipeline(IRIS_FAST.replace("epochs = 3", 'epochs = "3"'))
    result = invoke("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "train.epochs: expected int, got '3' (str)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing was created for a refused file


def test_several_problems_are_listed(write_pipeline):
    path = write_pipeline(IRIS_FAST.replace("epochs = 3", 'epochs = "3"').replace('lr = 0.01', 'lr = "fast"'))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert "error: 2 problems:" in result.output
    assert "train.optimizer.lr: expected float, got 'fast' (str)" in result.output


def test_validate_accepts_a_good_file(write_pipeline):
    result = invoke("validate", write_pipeline())
    assert result.exit_code == 0
    assert "valid (load_data → build_model → train → evaluate → export)" in result.output


def test_validate_applies_overrides(write_pipeline):
    result = invoke("validate", write_pipeline(), "--set", "model.dropout=2.0")
    assert result.exit_code == 2
    assert "--set model.dropout: input should be less than 1, got 2.0 (float)" in result.output


def test_shipped_pipelines_validate():
    from pathlib import Path

    for path in sorted(Path("pipelines").glob("*.toml")):
        result = invoke("validate", path)
        assert result.exit_code == 0, f"{path}: {result.output}"


def test_diverging_training_exits_1(write_pipeline, tmp_path):
    text = IRIS_FAST.replace("batch_norm = [true, false]", "batch_norm = false").replace(
        'name = "adam"\nlr = 0.01', 'name = "sgd"\nlr = 1e30'
    )
    result = invoke("run", write_pipeline(text), "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 1
    assert "error: training diverged: the loss became nan at epoch 1, step 2 of 7; last good checkpoint: none yet" in result.output
    assert "Traceback" not in result.output


def test_export_that_disagrees_with_eager_fails_the_run(write_pipeline, tmp_path):
    (tmp_path / "shape_model.py").write_text(textwrap.dedent('''
        from torch import nn
        from pipeline_core import DataSpec, hookimpl

        class BatchSizeDependent(nn.Module):
            """Adds 1 unless the batch has exactly 2 rows: tracing with a 2-row example freezes the branch."""

            def __init__(self, spec):
                super().__init__()
                self.linear = nn.Linear(spec.input_shape[0], spec.num_outputs)

            def forward(self, x):
                out = self.linear(x)
                return out if x.shape[0] == 2 else out + 1.0

        def shape_model(spec: DataSpec) -> nn.Module:
            return BatchSizeDependent(spec)

        @hookimpl
        def register_models(register):
            register("shape_model", shape_model)
    '''))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["shape_model.py"]').replace(
        'name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', 'name = "shape_model"'
    ) + '\n[export]\nformats = ["torchscript"]\n\n[export.torchscript]\nmethod = "trace"\n'
    result = invoke("run", write_pipeline(text), "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 1
    assert "export check failed: torchscript: batch 1: 'logits' differs from eager PyTorch by 1 at row 0" in result.output
    report = json.loads((tmp_path / "run" / "export_report.json").read_text())
    assert report["torchscript"]["passed"] is False
    assert report["torchscript"]["max_abs_diff"] == pytest.approx(1.0)
    assert not (tmp_path / "run" / "manifest.json").exists()
    assert not (tmp_path / "run" / "bundle" / "manifest.json").exists()  # the bundle is never sealed


def test_plugins_lists_builtins_with_hooks_and_components():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    entries = {entry["name"]: entry for entry in json.loads(result.output)}
    assert entries["plugins.optimizers"]["components"] == {"optimizer": ["sgd", "adam", "adamw", "adagrad", "rmsprop"]}
    assert entries["plugins.progress"]["hooks"] == ["after_stage", "before_stage", "on_epoch_end", "on_stage_error"]
    assert entries["plugins.datasets.iris"]["source"] == "builtin"
    table = invoke("plugins")
    assert "plugins.models.mlp" in table.output and "model: mlp" in table.output


def test_plugins_with_a_pipeline_file_includes_its_plugins(write_pipeline, tmp_path):
    (tmp_path / "extra.py").write_text("from pipeline_core import hookimpl\n\n@hookimpl\ndef register_losses(register):\n    register('zero', lambda: (lambda o, t: (o * 0).sum()))\n")
    path = write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["extra.py"]'))
    entries = {e["name"]: e for e in json.loads(invoke("plugins", "--json", "--pipeline", path).output)}
    assert entries["extra.py"]["components"] == {"loss": ["zero"]}


def test_unexpected_error_is_one_line_unless_verbose(write_pipeline, tmp_path):
    (tmp_path / "crash.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl

        def crash(run):
            raise ZeroDivisionError("plugin bug")

        @hookimpl
        def register_stages(register):
            register("crash", crash)
    '''))
    path = write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["crash.py"]\nstages = ["crash"]'))
    result = invoke("run", path, "--out", tmp_path / "a")
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError: plugin bug" in result.output
    assert "Traceback" not in result.output
    verbose = CliRunner().invoke(cli, ["--verbose", "run", str(path), "--out", str(tmp_path / "b")])
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.output


def test_out_folder_that_holds_files_is_refused(write_pipeline, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    result = invoke("run", write_pipeline(), "--out", tmp_path / "full")
    assert result.exit_code == 1
    assert "already holds files" in result.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "precious"
