"""Dataset plugins on real files: MNIST IDX files (raw and gzipped) through torchvision's loader,
CSV files with every kind of target, and the generated tutorial datasets."""

from __future__ import annotations

import gzip
import textwrap

import numpy as np
import pytest
import torch

from pipeline_core import ConfigError, DatasetContext, ScaleImages
from pipeline_core_plugins.datasets.csv_file import csv_dataset
from pipeline_core_plugins.datasets.digits import digits
from pipeline_core_plugins.datasets.idx import idx_bytes, write_mnist
from pipeline_core_plugins.datasets.mnist import mnist
from pipeline_core_plugins.datasets.synthetic import moons, random_regression, spiral_points, spirals


def _images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    return generator.integers(0, 256, (count, 28, 28), dtype=np.uint8), generator.integers(0, 10, count, dtype=np.uint8)


@pytest.fixture(params=[False, True], ids=["raw", "gzip"])
def mnist_root(tmp_path, request):
    write_mnist(tmp_path, _images(120, 0), _images(30, 1), gzipped=request.param)
    return tmp_path


class TestMnist:
    def test_real_loader_reads_idx_files(self, mnist_root):
        bundle = mnist(DatasetContext(0, mnist_root), root=".")
        train_images, train_labels = _images(120, 0)
        assert bundle.splits["train"].inputs.dtype == torch.uint8
        assert bundle.splits["train"].inputs.shape == (120, 1, 28, 28)
        assert np.array_equal(bundle.splits["train"].inputs[:, 0].numpy(), train_images)
        assert np.array_equal(bundle.splits["train"].targets.numpy(), train_labels.astype(np.int64))
        assert len(bundle.splits["test"]) == 30
        assert bundle.spec.input_shape == (1, 28, 28) and bundle.spec.input_dtype == torch.uint8
        assert bundle.spec.classes == tuple("0123456789")

    def test_validation_split_by_count_and_fraction(self, mnist_root):
        by_count = mnist(DatasetContext(0, mnist_root), root=".", val_size=20)
        assert (len(by_count.splits["train"]), len(by_count.splits["validation"])) == (100, 20)
        by_fraction = mnist(DatasetContext(0, mnist_root), root=".", val_size=0.25)
        assert len(by_fraction.splits["validation"]) == 30
        # every training image lands in exactly one of the two splits
        together = torch.cat([by_count.splits["train"].inputs, by_count.splits["validation"].inputs])
        assert sorted(together.reshape(120, -1).sum(dim=1).tolist()) == sorted(torch.from_numpy(_images(120, 0)[0]).reshape(120, -1).sum(dim=1).tolist())

    def test_missing_files_say_where_and_how(self, tmp_path):
        with pytest.raises(ConfigError) as caught:
            mnist(DatasetContext(0, tmp_path), root="nowhere")
        message = str(caught.value)
        assert f"looked in {tmp_path / 'nowhere' / 'MNIST' / 'raw'}" in message
        assert "train-images-idx3-ubyte[.gz]" in message and "download = true" in message

    def test_corrupt_file_is_a_clear_error(self, tmp_path):
        raw = write_mnist(tmp_path, _images(10, 0), _images(5, 1))
        (raw / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
        with pytest.raises(ConfigError, match="MNIST could not be loaded from"):
            mnist(DatasetContext(0, tmp_path), root=".")

    def test_scaling_and_normalization(self):
        pixels = torch.tensor([[0, 255]], dtype=torch.uint8)
        assert torch.allclose(ScaleImages()(pixels), torch.tensor([[0.0, 1.0]]))
        assert torch.allclose(ScaleImages(0.5, 0.5)(pixels), torch.tensor([[-1.0, 1.0]]))

    def test_idx_header(self):
        data = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
        assert data[:4] == bytes([0, 0, 8, 2]) and int.from_bytes(data[4:8], "big") == 2 and len(data) == 4 + 8 + 6
        assert gzip.decompress(gzip.compress(data)) == data


class TestCsv:
    def _write(self, tmp_path, text):
        path = tmp_path / "data.csv"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def test_string_labels_become_classes(self, tmp_path):
        rows = "\n".join(f"{i},{i % 3 * 10 + 0.5},{['cat', 'dog', 'eel'][i % 3]}" for i in range(30))
        self._write(tmp_path, "a,b,animal\n" + rows)
        bundle = csv_dataset(DatasetContext(0, tmp_path), path="data.csv", target="animal")
        assert bundle.spec.task == "multiclass"
        assert bundle.spec.classes == ("cat", "dog", "eel")
        assert bundle.spec.feature_names == ("a", "b")
        assert sum(len(s) for s in bundle.splits.values()) == 30

    def test_two_labels_are_binary_and_numeric_labels_sort_numerically(self, tmp_path):
        rows = "\n".join(f"{i},{[2, 10][i % 2]}" for i in range(20))
        self._write(tmp_path, "x,y\n" + rows)
        bundle = csv_dataset(DatasetContext(0, tmp_path), path="data.csv", target="y")
        assert bundle.spec.task == "binary" and bundle.spec.classes == ("2", "10")
        assert bundle.splits["train"].targets.dtype == torch.float32 and bundle.splits["train"].targets.shape[1] == 1

    def test_continuous_target_is_regression(self, tmp_path):
        rows = "\n".join(f"{i},{i * 0.37:.3f}" for i in range(40))
        self._write(tmp_path, "x,y\n" + rows)
        bundle = csv_dataset(DatasetContext(0, tmp_path), path="data.csv", target="y")
        assert bundle.spec.task == "regression" and bundle.spec.num_outputs == 1

    def test_chosen_features_and_explicit_task(self, tmp_path):
        rows = "\n".join(f"{i},{i * 2},{i % 2},{i % 4}" for i in range(40))
        self._write(tmp_path, "a,b,ignored,label\n" + rows)
        bundle = csv_dataset(DatasetContext(0, tmp_path), path="data.csv", target="label", features=["b", "a"], task="regression")
        assert bundle.spec.feature_names == ("b", "a") and bundle.spec.task == "regression"

    @pytest.mark.parametrize("text, options, message", [
        ("a,b\n1,x\n2,y\n", {"target": "c"}, "no target column 'c'; the columns are ['a', 'b']"),
        ("a,b\n1,x\n2,y\n", {"target": "b", "features": ["z"]}, "unknown feature column(s) ['z']"),
        ("a,b\n1,x\nfoo,y\n", {"target": "b"}, "column 'a' mixes numbers ('1') and text ('foo')"),
        ("a,b\n1,x\nfoo,y\n", {"target": "b", "columns": {"a": "number"}}, "line 3, column 'a': 'foo' is not a number"),
        ("a,b\n1,x,3\n", {"target": "b"}, "line 2 has 3 cells, the header has 2"),
        ("a,b\n", {"target": "b"}, "expected a header row and at least one data row"),
        ("a,b\n1,x\n2,y\n3,z\n", {"target": "b", "task": "binary"}, "task 'binary' needs exactly 2 labels in 'b', found 3"),
    ])
    def test_bad_files(self, tmp_path, text, options, message):
        self._write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            csv_dataset(DatasetContext(0, tmp_path), path="data.csv", **options)
        assert message in str(caught.value)

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="CSV file not found"):
            csv_dataset(DatasetContext(0, tmp_path), path="absent.csv", target="y")


class TestGenerated:
    def test_moons_is_binary_with_the_tutorial_split(self):
        bundle = moons(DatasetContext(42))
        assert bundle.spec.task == "binary" and bundle.spec.num_outputs == 1
        assert (len(bundle.splits["train"]), len(bundle.splits["test"])) == (800, 200)
        from sklearn.datasets import make_moons
        from sklearn.model_selection import train_test_split

        x, y = make_moons(n_samples=1000, noise=0.03, random_state=42)
        _, x_test, _, _ = train_test_split(x, y, test_size=0.2, random_state=42)
        assert np.allclose(bundle.splits["test"].inputs.numpy(), x_test.astype(np.float32))

    def test_spirals_are_cs231n_points(self):
        x, y = spiral_points(100, 3, 0.2, 42)
        assert x.shape == (300, 2) and np.bincount(y).tolist() == [100, 100, 100]
        assert np.allclose(np.hypot(x[:, 0], x[:, 1])[:100], np.linspace(0, 1, 100))  # radius grows along an arm
        bundle = spirals(DatasetContext(42))
        assert bundle.spec.classes == ("arm0", "arm1", "arm2")

    def test_random_regression_shapes(self):
        bundle = random_regression(DatasetContext(0))
        assert bundle.splits["train"].inputs.shape == (64, 1000) and bundle.splits["train"].targets.shape == (64, 10)
        assert bundle.spec.task == "regression" and bundle.spec.num_outputs == 10

    def test_digits_are_real_and_stratified(self):
        bundle = digits(DatasetContext(0), val_size=0.1)
        assert bundle.spec.input_shape == (64,) and len(bundle.spec.classes) == 10
        assert sum(len(s) for s in bundle.splits.values()) == 1797
        counts = np.bincount(bundle.splits["test"].targets.numpy(), minlength=10)
        assert counts.min() >= 34  # stratified: each digit has its share of the 360 test images
