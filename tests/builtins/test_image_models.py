"""Image models: the ``cnn`` and ``torchvision`` components with real torchvision architectures built
without weights, local weights files written here, every export format checked, and each bad input
stopped before training with exit code 2 and the key named."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from torchvision import models

from pipeline_core import ConfigError, DataSpec, ImageSpec
from pipeline_core.cli import cli
from pipeline_core.testing import load_with_plugins, run_with_plugins, small_pipeline
from pipeline_core_plugins.models.cnn import cnn
from pipeline_core_plugins.models.torchvision_models import torchvision

import image_plugin
from digit_images import write_digit_mnist
from helpers import ROOT

PLUGIN = Path(image_plugin.__file__).resolve()
RGB = DataSpec("multiclass", (3, 32, 32), 4, input_dtype=torch.uint8, image=ImageSpec())
GRAY = DataSpec("multiclass", (1, 32, 32), 4, input_dtype=torch.uint8, image=ImageSpec())


TRAIN_ONLY = ["load_data", "build_model", "train"]


def images_pipeline(model: dict, epochs: int = 1, stages: list[str] | None = None, **data: object) -> dict:
    pipeline = {"name": "images", "seed": 0, **({"stages": stages} if stages else {})}
    return small_pipeline(pipeline=pipeline, data={"name": "synthetic_images", "per_class": 8, **data},
                          model=model, train={"epochs": epochs, "batch_size": 16})


def cli_run(tmp_path: Path, model: str, data: str = "") -> tuple[int, str, Path]:
    """``pipeline run`` on a pipeline file using the test's image dataset plugin: exit code, output, run folder."""
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(f"""
        [pipeline]
        name = "images"
        plugins = ["{PLUGIN}"]

        [data]
        name = "synthetic_images"
        per_class = 4
        {data}

        [model]
        {model}

        [train]
        epochs = 1
        batch_size = 8

        [train.optimizer]
        name = "adam"
        lr = 0.001

        [train.loss]
        name = "cross_entropy"
    """))
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "run")])
    return result.exit_code, result.output, tmp_path / "run"


def assert_refused_before_training(code: int, output: str, run_dir: Path, *fragments: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output
    for fragment in fragments:
        assert fragment in output, output
    assert not (run_dir / "weights.pt").exists() and not (run_dir / "history.csv").exists()


# ---------------------------------------------------------------------------------------------
# cnn


def test_cnn_takes_its_shapes_from_the_data():
    mnist = cnn(DataSpec("multiclass", (1, 28, 28), 10), channels=[8, 16], batch_norm=True, dropout=0.25, hidden_sizes=[32])
    convolutions = [m for m in mnist.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.padding) for c in convolutions] == [(1, 8, (1, 1)), (8, 16, (1, 1))]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in mnist.modules()) == 2
    assert mnist[-3].in_features == 16 * 7 * 7  # two 2×2 poolings: 28 → 14 → 7
    assert mnist(torch.zeros(3, 1, 28, 28)).shape == (3, 10)

    per_block = cnn(RGB, channels=[8, 8, 16], kernel_size=[5, 3, 3], stride=[2, 1, 1], padding=[2, "same", 0],
                    pool=["none", "max", "avg"], global_pool="avg", channels_last=True)
    assert [c.kernel_size[0] for c in per_block.modules() if isinstance(c, torch.nn.Conv2d)] == [5, 3, 3]
    assert per_block(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    binary = cnn(DataSpec("binary", (3, 16, 16), 1), channels=[4])
    assert binary(torch.zeros(2, 3, 16, 16)).shape == (2, 1)
    default = cnn(DataSpec("multiclass", (1, 28, 28), 10))  # channels need not be written: two blocks, 16 and 32
    assert [c.out_channels for c in default.modules() if isinstance(c, torch.nn.Conv2d)] == [16, 32]


def test_cnn_list_options_must_agree_with_the_blocks(tmp_path):
    with pytest.raises(ConfigError, match=r"model: kernel_size has 3 values but channels has 2 blocks; give one value per block") as error:
        load_with_plugins(images_pipeline({"name": "cnn", "channels": [8, 16], "kernel_size": [3, 3, 3]}), tmp_path, plugins=[image_plugin])
    assert "[model 'cnn']" in str(error.value)
    with pytest.raises(ConfigError, match=r"model.pool: expected 'max' \| 'avg' \| 'none'"):
        load_with_plugins(images_pipeline({"name": "cnn", "channels": [8], "pool": "mean"}), tmp_path, plugins=[image_plugin])


def test_cnn_blocks_that_leave_no_image_stop_before_training(tmp_path):
    code, output, run_dir = cli_run(tmp_path, 'name = "cnn"\nchannels = [8, 8, 8, 8, 8, 8]', "size = 16")
    assert_refused_before_training(code, output, run_dir, "model.channels: block 5 of 6 leaves no image", "3×16×16 → 8×8×8 → 8×4×4 → 8×2×2 → 8×1×1")


def test_cnn_refuses_rows_of_features(tmp_path):
    with pytest.raises(ConfigError, match=r"model 'cnn' takes images of shape \(channels, height, width\); the data gives inputs of shape \[4\]"):
        run_with_plugins(small_pipeline(model={"name": "cnn", "channels": [4]}), tmp_path)


def test_mnist_cnn_pipeline_trains_and_exports_every_format(tmp_path):
    write_digit_mnist(root := tmp_path / "mnist", train=1200, test=300)
    run = run_with_plugins(ROOT / "pipelines" / "mnist_cnn.toml", tmp_path, overrides=[
        f'data.root="{root}"', "data.val_size=200", "train.epochs=2", "train.batch_size=64"])
    assert run.metrics["test"]["accuracy"] > 0.5  # 10 classes; the full pipeline reaches 0.99 on these digits
    assert set(run.export_report) == {"onnx", "torchscript", "torch_export"}
    for name, entry in run.export_report.items():
        assert entry["passed"], (name, entry["problems"])
        assert [check["batch_size"] for check in entry["batches"]] == [1, 2, 7, 300]
        assert entry["noise_reference"] == "float64 twin of the eager model"
    metadata = json.loads((run.run_dir / "bundle" / "metadata.json").read_text())
    assert metadata["input"] == {"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "uint8"}
    assert metadata["image"] == {"channels": 1, "height": 28, "width": 28, "resize": []}

    # a deployer sends raw 0-255 pixels: the scaling and normalization are inside the ONNX graph
    graph = onnx.load(run.run_dir / "bundle" / "model.onnx").graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # a dynamic batch axis
    pixels = run.data.splits["test"].inputs[:5].numpy()
    session = onnxruntime.InferenceSession(str(run.run_dir / "bundle" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": pixels})[0]
    with torch.no_grad():
        eager = run.model.eval()(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(logits, eager, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# torchvision


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    """ImageNet-shaped resnet18 weights (1,000 classes), random but fixed: a local weights file."""
    torch.manual_seed(7)
    model = models.resnet18(num_classes=1000)
    with torch.no_grad():
        for module in model.modules():  # running statistics a trained model would have, not the defaults
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def test_resnet18_trains_and_exports_every_format(tmp_path):
    run = run_with_plugins(images_pipeline({"name": "torchvision", "arch": "resnet18", "channels_last": True}), tmp_path, plugins=[image_plugin])
    assert isinstance(run.model.network.model, models.ResNet)
    assert run.model.network.model.fc.out_features == 4
    assert run.training.steps == 2  # 32 training images, batch 16
    assert set(run.export_report) == {"onnx", "torchscript", "torch_export"}
    for name, entry in run.export_report.items():
        assert entry["passed"], (name, entry["problems"])
        assert [check["batch_size"] for check in entry["batches"]] == [1, 2, 7, 16]
    metadata = json.loads((run.run_dir / "bundle" / "metadata.json").read_text())
    assert metadata["image"] == {"channels": 3, "height": 32, "width": 32, "resize": []}


def test_local_weights_are_loaded_and_the_head_resized(resnet18_file):
    saved = torch.load(resnet18_file, weights_only=True)
    network = torchvision(RGB, arch="resnet18", weights=resnet18_file)
    state = network.model.state_dict()
    assert network.model.fc.weight.shape == (4, 512)
    assert all(torch.equal(state[key], value) for key, value in saved.items() if not key.startswith("fc."))
    assert network(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_a_runs_weights_file_fine_tunes_again(tmp_path, resnet18_file):
    """A run's weights.pt (preprocessing and the network under prefixes) is a weights file too; with
    the same classes it keeps its head."""
    first = run_with_plugins(images_pipeline({"name": "torchvision", "arch": "resnet18", "weights": str(resnet18_file)}, stages=TRAIN_ONLY),
                         tmp_path / "first", plugins=[image_plugin])
    network = torchvision(RGB, arch="resnet18", weights=first.run_dir / "weights.pt")
    trained = first.model.network.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in network.state_dict().items())


def test_freeze_backbone_trains_only_the_head(tmp_path, resnet18_file):
    run = run_with_plugins(images_pipeline({"name": "torchvision", "arch": "resnet18", "weights": str(resnet18_file), "freeze_backbone": True},
                                       epochs=2, stages=TRAIN_ONLY), tmp_path, plugins=[image_plugin])
    saved = torch.load(resnet18_file, weights_only=True)
    trained = run.model.network.model.state_dict()
    backbone = [key for key in saved if not key.startswith("fc.") and not key.endswith("num_batches_tracked")]
    assert all(torch.equal(trained[key], saved[key]) for key in backbone)  # weights and BatchNorm statistics alike
    assert not torch.equal(trained["fc.weight"], torchvision(RGB, arch="resnet18", weights=resnet18_file).model.fc.weight)
    trainable = [name for name, p in run.model.named_parameters() if p.requires_grad]
    assert trainable == ["network.model.fc.weight", "network.model.fc.bias"]


def test_channels_last_computes_the_same_in_nhwc_order(resnet18_file):
    plain = torchvision(RGB, arch="resnet18", weights=resnet18_file).eval()
    fast = torchvision(RGB, arch="resnet18", weights=resnet18_file, channels_last=True).eval()
    fast.model.fc.load_state_dict(plain.model.fc.state_dict())
    layouts = []
    fast.model.layer1.register_forward_hook(lambda module, args, output: layouts.append(output.is_contiguous(memory_format=torch.channels_last)))
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), rtol=1e-4, atol=1e-5)
    assert layouts == [True]


def test_a_grayscale_stem_is_adapted_from_colour_weights(resnet18_file):
    colour = torchvision(RGB, arch="resnet18", weights=resnet18_file).eval()
    gray = torchvision(GRAY, arch="resnet18", weights=resnet18_file, adapt_stem=True).eval()
    assert gray.model.conv1.in_channels == 1
    gray.model.fc.load_state_dict(colour.model.fc.state_dict())
    image = torch.rand(2, 1, 32, 32)
    with torch.no_grad():  # summed stem weights: a grayscale image gives what it gives repeated in three channels
        torch.testing.assert_close(gray(image), colour(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
    fresh = torchvision(GRAY, arch="efficientnet_b0", adapt_stem=True)
    assert fresh(torch.zeros(2, 1, 32, 32)).shape == (2, 4)


def test_squeezenet_convolution_head_is_resized():
    network = torchvision(DataSpec("multiclass", (3, 64, 64), 5, image=ImageSpec()), arch="squeezenet1_1")
    assert network.model.classifier[1].out_channels == 5
    assert network(torch.zeros(2, 3, 64, 64)).shape == (2, 5)


def test_builder_options_reach_the_builder():
    network = torchvision(RGB, arch="vit_b_32", builder_options={"image_size": 32})
    assert network.model.image_size == 32 and network.model.heads.head.out_features == 4


# ---------------------------------------------------------------------------------------------
# bad input: each stops before training, exit code 2, the key named


def test_an_unknown_architecture_gets_a_suggestion(tmp_path):
    code, output, run_dir = cli_run(tmp_path, 'name = "torchvision"\narch = "resnet19"')
    assert_refused_before_training(code, output, run_dir, "model: arch: torchvision has no classification model 'resnet19'; did you mean 'resnet18'")
    (tmp_path / "seg").mkdir()
    code, output, run_dir = cli_run(tmp_path / "seg", 'name = "torchvision"\narch = "fcn_resnet50"')
    assert_refused_before_training(code, output, run_dir, "'fcn_resnet50' is a torchvision segmentation model; this component builds image classifiers")


def test_hub_weights_are_refused_with_the_file_to_fetch(tmp_path):
    code, output, run_dir = cli_run(tmp_path, 'name = "torchvision"\narch = "resnet18"\nweights = "IMAGENET1K_V1"')
    assert_refused_before_training(code, output, run_dir, "weights: 'IMAGENET1K_V1' names torchvision's pretrained weights, which would be downloaded",
                                   "https://download.pytorch.org/models/resnet18-f37072fd.pth")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a weights file" * 10)


def _whole_module(path: Path) -> None:
    torch.save(models.resnet18(num_classes=4), path)


def _other_architecture(path: Path) -> None:
    torch.save(models.resnet34(num_classes=4).state_dict(), path)


def _not_tensors(path: Path) -> None:
    torch.save({"epoch": 3, "note": "weights elsewhere"}, path)


@pytest.mark.parametrize("write, message", [
    (None, "model.weights: no file at"),
    (_garbage, "cannot be read as a PyTorch weights file"),
    (_whole_module, "is not a plain state dict; torch.load(weights_only=True) refused it (WeightsUnpickler error: Unsupported global: "
                    "GLOBAL torchvision.models.resnet.ResNet was not an allowed global by default)"),
    (_other_architecture, "does not fit torchvision's resnet18: 96 unexpected key(s) (layer1.2.conv1.weight"),
    (_not_tensors, "holds a dict of other things than tensors, not a state dict"),
])
def test_unusable_weights_files_are_refused_before_training(tmp_path, write, message):
    path = tmp_path / "weights.pth"
    if write is not None:
        write(path)
    code, output, run_dir = cli_run(tmp_path, 'name = "torchvision"\narch = "resnet18"\nweights = "weights.pth"')
    assert_refused_before_training(code, output.replace("\n", " "), run_dir, message, str(path))


@pytest.mark.parametrize("head, message", [
    ("fcc", "model.head: resnet18 has no module 'fcc'; did you mean 'fc'?"),
    ("layer4", "model.head: 'layer4' of resnet18 is a Sequential; the head that is resized to the data's classes must be a Linear or Conv2d layer"),
    ("layer4.1.conv2", "model.head: 'layer4.1.conv2' of resnet18 has 512 outputs, but the model was built for 4 classes: it is not the classification head"),
])
def test_a_head_that_cannot_be_resized_is_refused(tmp_path, head, message):
    code, output, run_dir = cli_run(tmp_path, f'name = "torchvision"\narch = "resnet18"\nhead = "{head}"')
    assert_refused_before_training(code, output.replace("\n", " "), run_dir, message)


def test_channel_mismatch_names_the_fix(tmp_path):
    code, output, run_dir = cli_run(tmp_path, 'name = "torchvision"\narch = "resnet18"', "channels = 1")
    assert_refused_before_training(code, output.replace("\n", " "), run_dir, "model: resnet18 takes 3-channel images but the data has 1 channel(s) (1×32×32); set adapt_stem = true")


def test_images_too_small_for_the_architecture(tmp_path):
    code, output, run_dir = cli_run(tmp_path, 'name = "torchvision"\narch = "densenet121"', "size = 16")
    assert_refused_before_training(code, output.replace("\n", " "), run_dir, "model: torchvision model 'densenet121' cannot take the data's 3×16×16 (channels×height×width) images")


def test_a_frozen_backbone_needs_weights(tmp_path):
    with pytest.raises(ConfigError, match=r"model: freeze_backbone: without weights the frozen backbone would stay random"):
        load_with_plugins(images_pipeline({"name": "torchvision", "arch": "resnet18", "freeze_backbone": True}), tmp_path, plugins=[image_plugin])


def test_builder_options_cannot_override_the_component(tmp_path):
    with pytest.raises(ConfigError, match=r"builder_options: num_classes are set by this component"):
        load_with_plugins(images_pipeline({"name": "torchvision", "arch": "resnet18", "builder_options": {"num_classes": 3}}), tmp_path, plugins=[image_plugin])


# ---------------------------------------------------------------------------------------------
# pipeline inspect


def test_inspect_shows_both_models(tmp_path, resnet18_file):
    write_digit_mnist(root := tmp_path / "mnist", train=200, test=50)
    result = CliRunner().invoke(cli, ["inspect", str(ROOT / "pipelines" / "mnist_cnn.toml"), "--set", f'data.root="{root}"', "--set", "data.val_size=20"])
    assert result.exit_code == 0, result.output
    assert "Conv2d (0)" in result.output and "[2, 64, 7, 7]" in result.output and "parameters: 421,738 (421,738 trainable)" in result.output

    path = tmp_path / "tv.toml"
    path.write_text(textwrap.dedent(f"""
        [pipeline]
        name = "tv"
        plugins = ["{PLUGIN}"]
        [data]
        name = "synthetic_images"
        [model]
        name = "torchvision"
        arch = "resnet18"
        weights = "{resnet18_file}"
        freeze_backbone = true
    """))
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "ResNet (model)" in result.output and "[2, 512, 1, 1]" in result.output
    assert "parameters: 11,178,564 (2,052 trainable)" in result.output  # the head alone: 512 × 4 + 4


def test_validate_builds_image_models_from_the_mnist_spec(tmp_path):
    """MNIST's spec is known without its files, so ``pipeline validate`` builds the model and finds
    what would stop the run, with no data anywhere."""
    pipeline = ROOT / "pipelines" / "mnist_cnn.toml"
    absent = ["--set", f'data.root="{tmp_path / "absent"}"']
    result = CliRunner().invoke(cli, ["validate", str(pipeline), *absent])
    assert result.exit_code == 0, result.output
    assert "model 'cnn': outputs (N, 10) as the data needs" in result.output and "checked on the spec of dataset 'mnist', before any training" in result.output
    result = CliRunner().invoke(cli, ["validate", str(pipeline), *absent, "--set", "model.channels=[8, 8, 8, 8, 8]"])
    assert result.exit_code == 2 and "model.channels: block 5 of 5 leaves no image" in result.output
    result = CliRunner().invoke(cli, ["validate", str(pipeline), *absent, "--set", 'model={name="torchvision", arch="resnet18"}'])
    assert result.exit_code == 2 and "set adapt_stem = true" in result.output
