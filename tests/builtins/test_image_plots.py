"""Image plots: the sample grid draws colour images as they are, and the worst-mistakes grid shows
the evaluated split's most confident wrong predictions, with data that matches the run's model."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from pipeline_core.testing import run_with_plugins, small_pipeline

import image_plugin
from helpers import check_png

EVALUATED = ["load_data", "build_model", "train", "evaluate"]


def _run_squares(tmp_path, epochs: int):
    pipeline = small_pipeline(pipeline={"name": "squares", "seed": 0, "stages": EVALUATED},
                              data={"name": "synthetic_images", "per_class": 16},
                              model={"name": "cnn", "channels": [8, 16]}, train={"epochs": epochs, "batch_size": 16})
    return run_with_plugins(pipeline, tmp_path, plugins=[image_plugin])


def test_worst_mistakes_are_the_most_confident_wrong_predictions(tmp_path):
    run = _run_squares(tmp_path, epochs=1)
    index = json.loads((run.run_dir / "plots" / "index.json").read_text())
    assert {"samples", "mistakes", "confusion_matrix"} <= set(index)
    entry = index["mistakes"]
    check_png(run.run_dir / entry["file"])

    test = run.data.splits["test"]
    with torch.no_grad():
        probabilities = torch.softmax(run.model.eval()(test.inputs).double(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    wrong = (predicted != test.targets).nonzero().view(-1).tolist()
    assert 0 < len(wrong) < len(test)  # one epoch: some right, some wrong
    expected = sorted(wrong, key=lambda row: -float(confidence[row]))[:16]
    data = entry["data"]
    assert data["split"] == "test"
    assert data["wrong"] == len(wrong) and data["rows"] == expected
    assert data["true"] == [image_plugin.CLASSES[int(test.targets[row])] for row in expected]
    assert data["predicted"] == [image_plugin.CLASSES[int(predicted[row])] for row in expected]
    np.testing.assert_allclose(data["confidence"], [float(confidence[row]) for row in expected], rtol=1e-9)
    assert data["confidence"] == sorted(data["confidence"], reverse=True)
    matrix = np.array(run.metrics["test"]["confusion_matrix"])
    assert data["wrong"] == matrix.sum() - np.trace(matrix)


def test_no_mistakes_says_so(tmp_path):
    run = _run_squares(tmp_path, epochs=15)
    assert run.metrics["test"]["accuracy"] == 1.0
    entry = json.loads((run.run_dir / "plots" / "index.json").read_text())["mistakes"]
    assert entry["data"] == {"split": "test", "wrong": 0, "rows": [], "true": [], "predicted": [], "confidence": []}
    assert "(0 wrong of 32)" in entry["title"]
    with Image.open(run.run_dir / entry["file"]) as image:
        assert image.format == "PNG"


def test_colour_samples_are_drawn_in_colour(tmp_path):
    run = _run_squares(tmp_path, epochs=1)
    entry = json.loads((run.run_dir / "plots" / "index.json").read_text())["samples"]
    check_png(run.run_dir / entry["file"])
    with Image.open(run.run_dir / entry["file"]) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    # the squares' hues (pure-ish red, green, blue, yellow), not a grayscale or clipped-white rendering
    for hue in image_plugin.HUES.int().tolist():
        assert (np.abs(pixels - np.array(hue)).sum(axis=1) < 30).sum() > 50, hue
