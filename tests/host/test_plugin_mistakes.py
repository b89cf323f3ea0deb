"""Mistakes a plugin author makes, made as they would make them (a real plugin file, a real pipeline
file, the command line): a model with the wrong number of outputs, data with no features, a
misspelled hook, and the documented preprocessing example run as it is written."""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline_core import DatasetContext, DataSpec
from pipeline_core.engine import check_data_spec, check_model_outputs
from pipeline_core.testing import build_host, run_pipeline

from helpers import IRIS_FAST, ROOT, invoke

MODELS = '''
import torch
from torch import nn
from pipeline_core import DataSpec, hookimpl


def wide(spec: DataSpec, *, outputs: int = 7) -> nn.Module:
    """A last layer sized by hand instead of from spec.num_outputs."""
    return nn.Sequential(nn.Linear(spec.input_shape[0], 8), nn.ReLU(), nn.Linear(8, outputs))


def fixed_input(spec: DataSpec) -> nn.Module:
    """Built for five features whatever the data has."""
    return nn.Linear(5, spec.num_outputs)


class Pair(nn.Module):
    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.linear = nn.Linear(spec.input_shape[0], spec.num_outputs)

    def forward(self, x):
        return self.linear(x), x


def pair(spec: DataSpec) -> nn.Module:
    """Returns a tuple (logits, features)."""
    return Pair(spec)


@hookimpl
def register_models(register):
    register("wide", wide)
    register("fixed_input", fixed_input)
    register("pair", pair)
'''



def _pipeline(write_pipeline, tmp_path, model: str, data: str = '[data]\nname = "iris"\n', loss: str = "cross_entropy") -> Path:
    (tmp_path / "models.py").write_text(textwrap.dedent(MODELS))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["models.py"]').replace('[data]\nname = "iris"\n', data)
    text = text.replace('name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', model)
    return write_pipeline(text.replace('name = "cross_entropy"', f'name = "{loss}"'))


def test_a_multiclass_model_with_seven_outputs_for_three_classes_is_refused_everywhere(write_pipeline, tmp_path):
    path = _pipeline(write_pipeline, tmp_path, 'name = "wide"')
    needed = ("model 'wide' (plugin 'models.py') gives outputs of shape (2, 7) for 2 rows; the data needs (N, 3), here (2, 3): "
              "multiclass, one score per class (3 classes: setosa, versicolor, virginica)")
    validated = invoke("validate", path)
    assert validated.exit_code == 2 and needed in validated.output and "Traceback" not in validated.output
    inspected = invoke("inspect", path)
    assert inspected.exit_code == 2 and needed in inspected.output

    run = invoke("run", path, "--out", tmp_path / "run")
    assert run.exit_code == 2 and needed in run.output
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "build_model" and needed in status["error"]
    assert not (tmp_path / "run" / "weights.pt").exists() and not (tmp_path / "run" / "bundle").exists()


@pytest.mark.parametrize("model, data, loss, needed", [
    ('name = "wide"', '[data]\nname = "moons"\nsamples = 60\n', "bce_with_logits",
     "gives outputs of shape (2, 7) for 2 rows; the data needs (N, 1), here (2, 1): binary, one logit per row"),
    ('name = "wide"\noutputs = 1', '[data]\nname = "random_regression"\nrows = 16\nin_features = 6\nout_features = 4\ntest_rows = 8\n', "mse",
     "gives outputs of shape (2, 1) for 2 rows; the data needs (N, 4), here (2, 4): regression, 4 target value(s) per row"),
    ('name = "pair"', '[data]\nname = "iris"\n', "cross_entropy",
     "model 'pair' (plugin 'models.py') returns tuple, not a tensor; the data needs one tensor of shape (N, 3)"),
    ('name = "fixed_input"', '[data]\nname = "iris"\n', "cross_entropy",
     "model 'fixed_input' (plugin 'models.py') cannot run on 2 rows of the data (inputs (2, 4) float32): RuntimeError: mat1 and mat2"),
])
def test_outputs_that_do_not_fit_the_task_are_refused_by_validate_and_run(write_pipeline, tmp_path, model, data, loss, needed):
    path = _pipeline(write_pipeline, tmp_path, model, data, loss)
    validated = invoke("validate", path)
    assert validated.exit_code == 2 and needed in validated.output
    run = invoke("run", path, "--out", tmp_path / "run")
    assert run.exit_code == 2 and needed in run.output
    assert json.loads((tmp_path / "run" / "status.json").read_text())["stage"] == "build_model"


def test_validate_says_what_it_checked(write_pipeline, tmp_path):
    result = invoke("validate", _pipeline(write_pipeline, tmp_path, 'name = "wide"\noutputs = 3'))
    assert result.exit_code == 0
    assert ("model 'wide': outputs (N, 3) as the data needs: multiclass, one score per class (3 classes: setosa, versicolor, "
            "virginica) (checked on the spec of dataset 'iris', before any training)") in result.output


FILTERED = '''
import torch
from pipeline_core import DataBundle, DatasetContext, DataSpec, Split, hookimpl


def _columns(min_spread: float) -> list[int]:
    return [column for column, spread in enumerate([0.5, 1.0, 2.0]) if spread >= min_spread]


def filtered(context: DatasetContext, *, min_spread: float = 0.0) -> DataBundle:
    """Three features, of which only those with at least min_spread are kept."""
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(context.seed)) * torch.tensor([0.5, 1.0, 2.0])
    x = x[:, _columns(min_spread)]
    y = (torch.arange(40) % 2).long()
    spec = DataSpec("multiclass", (x.shape[1],), 2, classes=("a", "b"))
    return DataBundle(spec, {"train": Split(x[:30], y[:30]), "test": Split(x[30:], y[30:])})


def filtered_spec(context: DatasetContext, *, min_spread: float) -> DataSpec:
    return DataSpec("multiclass", (len(_columns(min_spread)),), 2, classes=("a", "b"))


@hookimpl
def register_datasets(register):
    register("filtered", filtered)
    register("filtered_with_spec", filtered, spec=filtered_spec)
'''


@pytest.mark.parametrize("dataset", ["filtered", "filtered_with_spec"])
def test_a_filter_that_leaves_no_feature_is_refused_naming_the_dataset(write_pipeline, tmp_path, dataset):
    (tmp_path / "filtered.py").write_text(textwrap.dedent(FILTERED))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["filtered.py"]')
    path = write_pipeline(text.replace('[data]\nname = "iris"\n', f'[data]\nname = "{dataset}"\nmin_spread = 5.0\n'))
    refused = (f"dataset '{dataset}' (plugin 'filtered.py') gives inputs of shape (N, 0): no features, so there is nothing to "
               "learn from; check the dataset's options")
    validated = invoke("validate", path)
    if dataset == "filtered_with_spec":  # the spec lets validate see it without loading the data
        assert validated.exit_code == 2 and refused in validated.output
    else:
        assert validated.exit_code == 0 and "outputs checked when the run builds it" in validated.output
    run = invoke("run", path, "--out", tmp_path / "run")
    assert run.exit_code == 2 and refused in run.output
    assert json.loads((tmp_path / "run" / "status.json").read_text())["stage"] == "build_model"


def test_a_csv_feature_list_that_selects_nothing_is_refused_by_validate(write_pipeline, tmp_path):
    (tmp_path / "rows.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    path = write_pipeline(IRIS_FAST.replace('[data]\nname = "iris"\n', '[data]\nname = "csv"\npath = "rows.csv"\ntarget = "label"\nfeatures = []\n'))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert "rows.csv: [data] features = [] selects no column; the columns are ['a', 'b', 'label']" in result.output


def _spec_of_loaded(name: str, options: dict, base_dir: Path = ROOT) -> tuple[DataSpec, DataSpec]:
    registry = build_host().registry
    dataset = registry.get("dataset", name)
    values, problems = dataset.options.validate(options)
    assert not problems
    context = DatasetContext(7, base_dir)
    return dataset.spec(context, **values), dataset.factory(context, **values).spec


@pytest.mark.parametrize("name, options", [
    ("iris", {}), ("iris", {"test_size": 0.5, "standardize": False}), ("digits", {}), ("moons", {"samples": 40}),
    ("spirals", {"classes": 5, "per_class": 10}), ("random_regression", {"in_features": 3, "out_features": 2}),
])
def test_a_built_in_datasets_spec_is_the_spec_of_its_loaded_bundle(name, options):
    said, loaded = _spec_of_loaded(name, options)
    assert said == loaded


@pytest.mark.parametrize("text, options", [
    ("a,b,label\n1,2,x\n3,4,y\n5,6,z\n7,8,y\n2,1,z\n4,3,x\n", {"stratify": False}),
    ("a,b,value\n1,2,0.5\n3,4,1.25\n5,6,2.5\n7,8,3.75\n", {"features": ["b"]}),
    ("a,b,flag\n1,2,1\n3,4,0\n5,6,1\n7,8,0\n", {"task": "binary", "stratify": False}),
])
def test_the_csv_datasets_spec_is_the_spec_of_its_loaded_bundle(tmp_path, text, options):
    (tmp_path / "rows.csv").write_text(text)
    target = text.split("\n", 1)[0].split(",")[-1]
    said, loaded = _spec_of_loaded("csv", {"path": "rows.csv", "target": target, "test_size": 0.5, **options}, tmp_path)
    assert said == loaded


class Noisy(nn.Module):
    """BatchNorm, dropout, a frozen submodule in eval mode, and noise drawn from every generator."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.5)
        self.frozen = nn.BatchNorm1d(4).eval()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        noise = torch.rand(1) + random.random() + float(np.random.rand())
        return self.head(self.frozen(self.drop(self.norm(x)))) + 0 * noise


def test_the_dry_pass_changes_nothing_a_run_depends_on():
    torch.manual_seed(0)
    model = Noisy().train()
    model.frozen.eval()  # set by a factory: must stay so
    rows = torch.randn(2, 4)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    shape = check_model_outputs(model, DataSpec("multiclass", (4,), 3), rows, owner="model 'noisy'")
    assert tuple(shape) == (2, 3)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # BatchNorm statistics too
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
    assert model.training and model.norm.training and not model.frozen.training


def test_a_spec_that_contradicts_its_task_names_the_dataset():
    from pipeline_core import PluginError

    with pytest.raises(PluginError, match="dataset 'odd' gives a binary DataSpec with num_outputs = 2"):
        check_data_spec(DataSpec("binary", (3,), 2), owner="dataset 'odd'")
    with pytest.raises(PluginError, match="num_outputs = 3 but 2 class name"):
        check_data_spec(DataSpec("multiclass", (3,), 3, classes=("a", "b")), owner="dataset 'odd'")


@pytest.mark.parametrize("body, message", [
    ("@hookimpl\ndef register_model(register):\n    register('tiny', lambda spec: None)\n",
     "plugin 'typo.py' implements 'register_model', which is not a hook, so nothing would ever call it; did you mean 'register_models'?"),
    ("@hookimpl\ndef after_stages(run, stage):\n    pass\n",
     "plugin 'typo.py' implements 'after_stages', which is not a hook, so nothing would ever call it; did you mean 'after_stage'?"),
    ("def register_models(register):\n    register('tiny', lambda spec: None)\n",
     "plugin 'typo.py' defines 'register_models' without @hookimpl, so nothing would ever call it; mark it with @pipeline_core.hookimpl"),
])
def test_a_hook_nothing_would_call_is_reported_with_the_nearest_hook(write_pipeline, tmp_path, body, message):
    (tmp_path / "typo.py").write_text("from pipeline_core import hookimpl\n\n" + body)
    path = write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["typo.py"]'))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert message in result.output
    assert "PIPELINE_CORE_BLOCK_PLUGINS" not in result.output  # the pipeline file asked for it: fix it there
    listed = invoke("plugins", "--json", "--pipeline", path)
    assert listed.exit_code == 0
    entry = {e["name"]: e for e in json.loads(listed.output)}["typo.py"]
    assert entry["status"] == "broken" and message in entry["error"]


def test_an_optional_hook_is_not_a_mistake(write_pipeline, tmp_path):
    (tmp_path / "optional.py").write_text("from pipeline_core import hookimpl\n\n@hookimpl(optionalhook=True)\ndef on_model_saved(run):\n    pass\n")
    assert invoke("validate", write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["optional.py"]'))).exit_code == 0


def _documented_preprocessing_plugin() -> str:
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    after = guide.split("<!-- preprocess example:", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_documented_preprocessing_example_runs_and_ships_a_model_that_takes_raw_rows(tmp_path):
    (tmp_path / "incomes.py").write_text(_documented_preprocessing_plugin())
    pipeline = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["incomes.py"]').replace('[data]\nname = "iris"\n', '[data]\nname = "incomes"\n')
    pipeline = pipeline.replace("batch_norm = [true, false]", "batch_norm = false").replace('name = "cross_entropy"', 'name = "mse"')
    run = run_pipeline(pipeline.replace("epochs = 3", "epochs = 40"), tmp_path)
    preprocess = run.model.preprocess
    train_inputs = run.data.splits["train"].inputs
    assert type(preprocess).__name__ == "LogScale"
    assert torch.allclose(preprocess.mean, torch.log1p(train_inputs).mean(dim=0))  # statistics of the training split
    assert all(entry["passed"] for entry in run.export_report.values())
    assert run.metrics["test"]["r2"] > 0.5

    raw = run.data.splits["test"].inputs[:5]  # raw incomes, as a deployer has them
    rows = "income,rent,savings\n" + "".join(",".join(f"{value:.6f}" for value in row) + "\n" for row in raw.tolist())
    (tmp_path / "rows.csv").write_text(rows)
    result = invoke("predict", run.run_dir, "--input", tmp_path / "rows.csv", "--output", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    predicted = [record["prediction"] for record in json.loads((tmp_path / "out.json").read_text())]
    with torch.no_grad():
        eager = run.model.eval()(torch.tensor([[float(f"{v:.6f}") for v in row] for row in raw.tolist()])).view(-1)
    assert predicted == pytest.approx(eager.tolist(), rel=1e-4, abs=1e-5)
