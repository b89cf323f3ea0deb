"""A pipeline file need not name the loss its data implies nor an optimizer (issue 33): the loss
registered as the default of the data's task and the default optimizer (Adam) train it; an explicit
table still wins; a task without a default, or two plugins claiming one, is a clear config error."""

from __future__ import annotations

import json

import pytest

from pipeline_core import ConfigError, hookimpl
from pipeline_core.components.registry import Registry
from pipeline_core.errors import PluginError

from helpers import invoke, write_mixed_table

MINIMAL = """
[pipeline]
name = "minimal"

[data]
name = "{data}"
{options}

[model]
name = "mlp"
hidden_sizes = [8]

[train]
epochs = 2
batch_size = 32
"""


@pytest.mark.parametrize("data, options, task, loss", [
    ("iris", "", "multiclass", "cross_entropy"),
    ("moons", "", "binary", "bce_with_logits"),
    ("csv", 'path = "table.csv"\ntarget = "mass"\ntask = "regression"', "regression", "mse"),
])
def test_a_minimal_file_trains_with_the_tasks_loss_and_adam(tmp_path, data, options, task, loss):
    write_mixed_table(tmp_path, blanks=False)
    (tmp_path / "p.toml").write_text(MINIMAL.format(data=data, options=options))
    result = invoke("run", tmp_path / "p.toml", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    metadata = json.loads((tmp_path / "run" / "bundle" / "metadata.json").read_text())
    assert metadata["task"] == task and metadata["training"]["loss"].split(" ")[0] == loss
    assert metadata["training"]["optimizer"].startswith("adam (lr=0.001")  # its options' defaults, as `name = "adam"` gives
    assert "loss" in json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]


def test_an_explicit_loss_wins(tmp_path):
    (tmp_path / "p.toml").write_text(MINIMAL.format(data="iris", options="") + '\n[train.loss]\nname = "nll"\n')
    result = invoke("run", tmp_path / "p.toml", "--out", tmp_path / "run", "--quiet")
    # nll on raw logits trains (badly): what matters is that the file's choice is the one used
    assert json.loads((tmp_path / "run" / "bundle" / "metadata.json").read_text())["training"]["loss"].startswith("nll"), result.output


def test_two_defaults_for_one_task_are_refused_naming_both(tmp_path):
    class Rival:
        @hookimpl
        def register_losses(self, register):
            register("rival_ce", lambda: None, default_for=("multiclass",))

    from pipeline_core.testing import run_with_plugins

    with pytest.raises(ConfigError, match=r"2 plugins register the default: 'cross_entropy' .*'rival_ce'"):
        run_with_plugins(MINIMAL.format(data="iris", options=""), tmp_path, plugins=[Rival()])


def test_default_for_names_tasks():
    with pytest.raises(PluginError, match="default_for=\\('images',\\): expected a tuple of tasks"):
        Registry().add("loss", "odd", lambda: None, "mine", default_for=("images",))


def test_options_without_a_name_are_the_default_optimizers(tmp_path):
    """``--set train.optimizer.lr=...`` (or a sweep over it) on a file without ``[train.optimizer]``:
    the default optimizer with that option; a loss has no default before the data's task is known."""
    from pipeline_core.pipeline.load import load_pipeline

    (tmp_path / "p.toml").write_text(MINIMAL.format(data="moons", options=""))
    config, _ = load_pipeline(tmp_path / "p.toml", ("train.optimizer.lr=0.25",))
    assert config.train is not None and config.train.optimizer is not None
    assert (config.train.optimizer.name, config.train.optimizer.options["lr"]) == ("adam", 0.25)
    result = invoke("validate", tmp_path / "p.toml", "--set", "train.loss.reduction=\"sum\"")
    assert result.exit_code == 2 and "train.loss: missing 'name': which loss?" in result.output
