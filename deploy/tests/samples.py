"""Input files as a caller writes them, and what onnxruntime itself answers for their rows.

The deploy tools are checked against onnxruntime run directly on the bundle's graph, never against
their own code: what ``predict`` and the server add (reading files, shaping rows, labels, the
protocol) must give back exactly what the graph computes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime

from bundles import sample_inputs


def _text(value: np.generic) -> str:
    """NumPy's shortest text for a value (``5.13``, not float32's ``5.130000114440918``): what a
    person writes, and it reads back as the same float32."""
    return str(value)


def write_inputs(path: Path, rows: np.ndarray, feature_names: list[str]) -> Path:
    """``rows`` as a .csv (a header of ``feature_names`` when there are any, in reverse order to show
    that columns are matched by name), .json (a list of flat rows) or .npy file (the array as it is)."""
    flat = rows.reshape(len(rows), -1)
    if path.suffix == ".npy":
        np.save(path, rows)
    elif path.suffix == ".json":
        path.write_text(json.dumps([[json.loads(_text(value)) for value in row] for row in flat]))
    else:
        order = list(reversed(range(flat.shape[1]))) if feature_names else list(range(flat.shape[1]))
        with open(path, "w", newline="") as stream:
            writer = csv.writer(stream)
            if feature_names:
                writer.writerow([feature_names[i] for i in order])
            writer.writerows([[_text(value) for value in row[order]] for row in flat])
    return path


def onnxruntime_outputs(model: Path, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of ``model`` for ``rows``, by onnxruntime on the CPU and nothing else."""
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: rows}), strict=True))


def expected_columns(task: str, classes: list[str], outputs: dict[str, np.ndarray]) -> dict[str, list]:
    """The columns ``predict`` must write for these outputs: the label and a probability per class
    (a binary model's one sigmoid output is the second class's), or the regression's prediction."""
    if task == "regression":
        return {"prediction": outputs["prediction"][:, 0].tolist()}
    probabilities = outputs["probabilities"]
    if task == "binary":
        positive = probabilities[:, 0]
        probabilities = np.stack([1 - positive, positive], axis=1)
    labels = [classes[i] for i in probabilities.argmax(axis=1)]
    return {"label": labels, **{f"probability_{c}": probabilities[:, i].tolist() for i, c in enumerate(classes)}}


def read_columns(path: Path) -> dict[str, list]:
    """A predictions CSV as columns: text for ``label`` and ``file``, numbers for the rest."""
    with open(path, newline="") as stream:
        records = list(csv.DictReader(stream))
    assert records, f"{path} holds no predictions"
    return {name: [r[name] if name in ("label", "file") else float(r[name]) for r in records] for name in records[0]}


def assert_same_columns(found: dict[str, list], wanted: dict[str, list], rtol: float = 1e-6) -> None:
    """The same columns in the same order, the same labels, the same numbers (to float32 rounding)."""
    assert list(found) == list(wanted), f"columns {list(found)}, expected {list(wanted)}"
    for name, values in wanted.items():
        if name in ("label", "file"):
            assert found[name] == values, name
        else:
            np.testing.assert_allclose(found[name], values, rtol=rtol, atol=1e-7, err_msg=name)


def metadata_of(bundle: Path) -> dict:
    return json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))


def rows_for(metadata: dict, count: int = 12) -> np.ndarray:
    """Rows the bundle described by ``metadata`` takes."""
    return sample_inputs(metadata["task"], "image" in metadata, count)


def expected_predictions(bundle: Path, rows: np.ndarray, model: str = "model.onnx", alone: bool = False) -> dict[str, list]:
    """The columns ``predict`` must write for ``rows`` with ``bundle``'s ``model`` file, from
    onnxruntime on all rows at once, or on each row ``alone`` (a model whose answer depends on the
    batch, such as a dynamically quantized one, must be compared row by row)."""
    metadata = metadata_of(bundle)
    if alone:
        each = [onnxruntime_outputs(bundle / model, rows[i : i + 1]) for i in range(len(rows))]
        outputs = {name: np.concatenate([answer[name] for answer in each]) for name in each[0]}
    else:
        outputs = onnxruntime_outputs(bundle / model, rows)
    return expected_columns(metadata["task"], metadata["classes"], outputs)
