"""Broken pipeline files: each must fail validation with a message that names the file, the line,
the dotted key, what was expected and (where one is close) the valid name, before anything runs."""

from __future__ import annotations

import pytest

from pipeline_core.errors import ConfigError, PipelineError, PluginError
from pipeline_core.pipeline.runner import load_pipeline

from helpers import IRIS_FAST

BASE = IRIS_FAST.lstrip()

ADAM = 'name = "adam"\nlr = 0.01'

# (case id, the file's text, substrings the message must contain)
CASES = [
    ("misspelled option",
     BASE.replace("hidden_sizes", "hidden_size"),
     [":10: model.hidden_size: unknown key; did you mean 'hidden_sizes'?", ":8: model.hidden_sizes: missing required value (expected list[int])"]),
    ("string for an int",
     BASE.replace("epochs = 3", 'epochs = "5"'),
     [":14: train.epochs: expected int, got '5' (str)"]),
    ("string for a float",
     BASE.replace("lr = 0.01", 'lr = "0.01"'),
     [":19: train.optimizer.lr: expected float, got '0.01' (str) [optimizer 'adam']"]),
    ("int for a bool",
     BASE.replace("batch_norm = [true, false]", "batch_norm = 1"),
     [":11: model.batch_norm: expected bool | list[bool], got 1 (int)"]),
    ("unknown optimizer",
     BASE.replace('name = "adam"', 'name = "adamm"'),
     [":18: train.optimizer.name: unknown optimizer 'adamm'; did you mean 'adam'?", "available optimizers: adagrad, adam, adamw, rmsprop, sgd"]),
    ("unknown dataset",
     BASE.replace('[data]\nname = "iris"', '[data]\nname = "irsi"'),
     [":6: data.name: unknown dataset 'irsi'; did you mean 'iris'?"]),
    ("unknown model",
     BASE.replace('name = "mlp"', 'name = "transformer"'),
     [":9: model.name: unknown model 'transformer'", "available models: cnn, mlp, torchvision"]),
    ("unknown loss",
     BASE.replace('name = "cross_entropy"', 'name = "crossentropy"'),
     [":22: train.loss.name: unknown loss 'crossentropy'; did you mean 'cross_entropy'?"]),
    ("unknown metric in a list",
     BASE + '\n[evaluate]\nmetrics = ["accuracy", "acuracy"]\n',
     [":25: evaluate.metrics[1].name: unknown metric 'acuracy'; did you mean 'accuracy'?"]),
    ("unknown export format",
     BASE + '\n[export]\nformats = ["onx"]\n',
     [":25: export.formats[0].name: unknown exporter 'onx'; did you mean 'onnx'?"]),
    ("exporter option with the wrong type",
     BASE + '\n[export.onnx]\nopset = "18"\n',
     [":25: export.onnx.opset: expected int, got '18' (str) [exporter 'onnx']"]),
    ("unknown section",
     BASE + "\n[trian]\nepochs = 1\n",
     [":24: trian: unknown section; did you mean 'train'?"]),
    ("value below its bound",
     BASE.replace("epochs = 3", "epochs = 0"),
     [":14: train.epochs: input should be greater than or equal to 1, got 0 (int)"]),
    ("fraction out of range",
     BASE.replace('[data]\nname = "iris"\n', '[data]\nname = "iris"\ntest_size = 1.5\n'),
     [":7: data.test_size: input should be less than 1, got 1.5 (float) [dataset 'iris']"]),
    ("options that cannot work together",
     BASE.replace('[data]\nname = "iris"\n', '[data]\nname = "iris"\ntest_size = 0.6\nval_size = 0.5\n'),
     [":5: data: test_size + val_size is 1.1; it must leave data to train on (< 1) [dataset 'iris']"]),
    ("one flag per layer",
     BASE.replace("batch_norm = [true, false]", "batch_norm = [true]"),
     ["model: batch_norm has 1 flags but hidden_sizes has 2 layers"]),
    ("literal choice",
     BASE.replace("batch_norm = [true, false]", 'batch_norm = [true, false]\nactivation = "rellu"'),
     [":12: model.activation: expected 'relu' | 'tanh'", "got 'rellu' (str)"]),
    ("required option missing",
     BASE.replace(ADAM, 'name = "sgd"'),
     [":17: train.optimizer.lr: missing required value (expected float) [optimizer 'sgd']"]),
    ("nesterov without momentum",
     BASE.replace(ADAM, 'name = "sgd"\nlr = 0.01\nnesterov = true'),
     [":17: train.optimizer: nesterov = true needs momentum > 0 and dampening = 0"]),
    ("loss table without a name (absent, the task's default loss is used)",
     BASE.replace('[train.loss]\nname = "cross_entropy"', "[train.loss]\nreduction = \"mean\""),
     [":21: train.loss: missing 'name': which loss? (available: bce_with_logits, cross_entropy, mse, nll)"]),
    ("missing data section",
     BASE.replace('[data]\nname = "iris"\n', ""),
     ["data: missing section [data] (stage 'load_data' needs it; choose one of: cifar10, csv, digits, fashion_mnist, image_folder, iris, mnist, moons, random_regression, spirals)"]),
    ("component without a name",
     BASE.replace('[data]\nname = "iris"\n', "[data]\ntest_size = 0.2\n"),
     [":5: data: missing 'name': which dataset? (available: cifar10, csv, digits, fashion_mnist, image_folder, iris, mnist, moons, random_regression, spirals)"]),
    ("unknown stage",
     BASE.replace("seed = 3", 'seed = 3\nstages = ["load_data", "build_modle"]'),
     [":4: pipeline.stages[1]: unknown stage 'build_modle'; did you mean 'build_model'?"]),
    ("bad device",
     BASE.replace("seed = 3", 'seed = 3\ndevice = "gpu"'),
     [":4: pipeline.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu' (str)"]),
    ("batch size word",
     BASE.replace("batch_size = 16", 'batch_size = "all"'),
     [":15: train.batch_size: expected int | 'full', got 'all' (str)"]),
    ("option of a stage that takes none",
     BASE + "\n[stages.train]\nfoo = 1\n",
     [":25: stages.train.foo: unknown key (this takes no options) [stage 'train']"]),
    ("inline table",
     BASE.replace(f"[train.optimizer]\n{ADAM}", 'optimizer = { name = "adam", lrr = 0.01 }'),
     [":17: train.optimizer.lrr: unknown key; did you mean 'lr'?"]),
    ("plugins not a list",
     BASE.replace("seed = 3", 'seed = 3\nplugins = "x.py"'),
     ["pipeline.plugins: expected a list of module names or .py paths, got 'x.py'"]),
    ("not TOML",
     BASE + "\n[train\n",
     ["not valid TOML", "line 24"]),
    ("a section that is a value",
     'data = "iris"\n' + BASE.replace('[data]\nname = "iris"\n', ""),
     ["data: expected a table with a 'name'"]),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_file_is_refused_with_a_precise_message(write_pipeline, text, expected):
    path = write_pipeline(text)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_every_problem_is_reported_at_once(write_pipeline):
    text = BASE.replace("epochs = 3", 'epochs = "3"').replace("hidden_sizes", "hidden_size")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write_pipeline(text))
    assert len(caught.value.problems) == 3  # epochs, the unknown key, the missing required one


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such pipeline file"):
        load_pipeline(tmp_path / "absent.toml")


def test_missing_plugin_file_names_the_pipeline(write_pipeline):
    path = write_pipeline(BASE.replace("seed = 3", 'seed = 3\nplugins = ["nope.py"]'))
    with pytest.raises(PluginError) as caught:
        load_pipeline(path)
    assert f"{path}: pipeline.plugins: plugin file 'nope.py' not found" in str(caught.value)
    assert isinstance(caught.value, PipelineError) and caught.value.exit_code == 2


class TestOverrides:
    def test_override_is_read_as_toml(self, write_pipeline):
        config, _ = load_pipeline(write_pipeline(), ("train.epochs=7", "model.hidden_sizes=[4, 4]", "model.batch_norm=false"))
        assert config.train.epochs == 7
        assert config.model.options["hidden_sizes"] == [4, 4]
        assert config.overrides == ("train.epochs=7", "model.hidden_sizes=[4, 4]", "model.batch_norm=false")

    def test_bare_word_is_a_string(self, write_pipeline):
        config, _ = load_pipeline(write_pipeline(), ("train.optimizer.name=sgd", "train.optimizer.lr=0.5"))
        assert config.train.optimizer.name == "sgd"
        assert config.train.optimizer.options["lr"] == 0.5

    def test_override_is_validated_and_blamed(self, write_pipeline):
        with pytest.raises(ConfigError) as caught:
            load_pipeline(write_pipeline(), ('train.epochs="10"',))
        assert "--set train.epochs: expected int, got '10' (str)" in str(caught.value)

    def test_override_of_unknown_key(self, write_pipeline):
        with pytest.raises(ConfigError) as caught:
            load_pipeline(write_pipeline(), ("model.hiden_sizes=[3]",))
        assert "--set model.hiden_sizes: unknown key; did you mean 'hidden_sizes'?" in str(caught.value)

    @pytest.mark.parametrize("item", ["epochs", "=3", "train..epochs=3"])
    def test_malformed_override(self, write_pipeline, item):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            load_pipeline(write_pipeline(), (item,))

    def test_override_through_a_value(self, write_pipeline):
        with pytest.raises(ConfigError, match="train.epochs is a value, not a table"):
            load_pipeline(write_pipeline(), ("train.epochs.max=3",))
