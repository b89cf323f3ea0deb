"""The model-check cache (pipeline_core.model.check_cache): ``pipeline validate`` answers a check that passed
before without running it, and runs it again whenever anything it depends on changed: the model
plugin's source, the model's options, the data's spec. Failures are never kept, a damaged entry is
ignored, and PIPELINE_CORE_NO_CACHE turns it off. Each test has its own cache folder (conftest)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline_core.engine
from pipeline_core.cli import cli
from pipeline_core.engine import remember_model_check
from pipeline_core.model import check as model_check
from pipeline_core.testing import run_with_plugins

from helpers import IRIS_FAST

MODELS = '''
from pipeline_core import DataSpec, hookimpl


def wide(spec: DataSpec, *, outputs: int = 7):
    """A last layer sized by hand instead of from spec.num_outputs."""
    from torch import nn

    return nn.Sequential(nn.Linear(spec.input_shape[0], 8), nn.ReLU(), nn.Linear(8, outputs))


@hookimpl
def register_models(register):
    register("wide", wide)
'''


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The owners of the model checks that actually ran (a cache hit runs none)."""
    ran: list[str] = []
    real = model_check.check_model_outputs
    assert pipeline_core.engine.check_model_outputs is real  # the public name is bound now, never to the counter

    def counted(*args, **kwargs):
        ran.append(kwargs.get("owner", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(model_check, "check_model_outputs", counted)
    return ran


def _pipeline(tmp_path: Path, model: str = 'name = "wide"\noutputs = 3', data: str = 'name = "iris"') -> Path:
    (tmp_path / "models.py").write_text(textwrap.dedent(MODELS), encoding="utf-8")
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["models.py"]').replace('name = "iris"', data)
    path = tmp_path / "pipeline.toml"
    path.write_text(text.replace('name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', model), encoding="utf-8")
    return path


def _validate(path: Path, *overrides: str):
    return CliRunner().invoke(cli, ["validate", str(path), *[f"--set={o}" for o in overrides]], catch_exceptions=False)


def _entries() -> list[Path]:
    return sorted((Path(os.environ["PIPELINE_CORE_CACHE_DIR"]) / "model-checks").glob("*.json"))


def test_a_passed_check_is_answered_from_the_cache_with_the_same_output(tmp_path, checks):
    path = _pipeline(tmp_path)
    first, second = _validate(path), _validate(path)
    assert first.exit_code == second.exit_code == 0, first.output
    assert first.output == second.output
    assert "model 'wide': outputs (N, 3) as the data needs" in second.output
    assert len(checks) == 1 and len(_entries()) == 1


def test_editing_the_model_plugins_source_runs_the_check_again(tmp_path, checks):
    path = _pipeline(tmp_path)
    assert _validate(path).exit_code == 0
    with open(tmp_path / "models.py", "a", encoding="utf-8") as stream:
        stream.write("\n# edited\n")
    assert _validate(path).exit_code == 0
    assert len(checks) == 2 and len(_entries()) == 2


def test_other_options_or_another_spec_run_the_check_again(tmp_path, checks):
    path = _pipeline(tmp_path, model='name = "mlp"\nhidden_sizes = [16, 8]')
    for overrides in ((), ("model.hidden_sizes=[4]",), ("data.name='digits'",), ()):
        result = _validate(path, *overrides)
        assert result.exit_code == 0, result.output
    assert len(checks) == 3  # the last repeats the first: answered from the cache


def test_a_failed_check_is_never_kept_and_fails_every_time(tmp_path, checks):
    """Cold cache, and after the same model passed with other options: a wrong shape is refused."""
    path = _pipeline(tmp_path)
    assert _validate(path).exit_code == 0
    for _ in range(2):
        result = _validate(path, "model.outputs=7")
        assert result.exit_code == 2
        assert "gives outputs of shape (2, 7) for 2 rows; the data needs (N, 3)" in result.output
    assert len(checks) == 3 and len(_entries()) == 1


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, checks):
    path = _pipeline(tmp_path)
    assert _validate(path).exit_code == 0
    for damage in ("{not json", '{"format": 1, "outputs": "three"}', ""):
        _entries()[0].write_text(damage, encoding="utf-8")
        result = _validate(path)
        assert result.exit_code == 0 and "outputs (N, 3)" in result.output
    assert len(checks) == 4 and len(_entries()) == 1
    assert _validate(path).exit_code == 0 and len(checks) == 4  # the replaced entry is read


def test_no_cache_runs_the_check_every_time_and_writes_nothing(tmp_path, checks, monkeypatch):
    monkeypatch.setenv("PIPELINE_CORE_NO_CACHE", "1")
    path = _pipeline(tmp_path)
    assert _validate(path).exit_code == 0 and _validate(path).exit_code == 0
    assert len(checks) == 2
    assert not (Path(os.environ["PIPELINE_CORE_CACHE_DIR"]) / "model-checks").exists()


def test_the_check_a_run_passed_answers_validate(tmp_path, checks):
    """build_model records its passed check (remember_model_check): validate then runs none."""
    path = _pipeline(tmp_path)
    run = run_with_plugins(path, tmp_path, overrides=["pipeline.stages=['load_data', 'build_model']"])
    assert len(_entries()) == 1
    _entries()[0].unlink()
    assert run.data is not None
    remember_model_check(run, run.data.spec, 3)
    checks.clear()  # build_model's own check
    result = _validate(path)
    assert result.exit_code == 0 and "model 'wide': outputs (N, 3)" in result.output
    assert checks == []
