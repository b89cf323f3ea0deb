"""Deploy bundles made without torch, as the training side's export stage writes them.

The deploy suite runs where torch is not installed, so it cannot train a model to get a bundle. This
module writes one with the same files and the same shapes as ``pipeline_core/export/bundle.py``
(``bundle_metadata``, ``write_bundle``) and ``plugins/exporters/onnx.py``: a small MLP made with
``onnx.helper`` from fixed seeded weights, the metadata embedded in its ``metadata_props`` (strings as
they are, other values as JSON), ``metadata.json``, ``MODEL_CARD.md``, ``predict.py`` (the one-file
build of the installed deploy side, ``standalone.script()``) and ``manifest.json`` (sha256 and size
of every file). Optionally the int8 variant
that ``[export.optimize] variants = ["int8_dynamic"]`` adds, listed in ``metadata.json`` as
``plugins/optimize`` lists variants. The suite's bundles are only as good as their likeness to the
real ones: when the training side's format changes, this module changes with it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from pipeline_core_deploy import predict, standalone

Task = Literal["multiclass", "binary", "regression"]

FORMAT = {"name": "pipeline-core-bundle", "version": 1}
PRODUCER = "pipeline-core 0.1.0"
#: what the training side's ONNX exporter writes (torch.export's exporter, opset 18)
OPSET, IR_VERSION = 18, 10
INPUT = "input"
INT8 = "int8_dynamic"
IMAGE_SHAPE = (1, 8, 8)
CPU = "CPUExecutionProvider"
#: the seed of the rows that stand in for a training split (their ranges go in ``input_range``)
TRAIN_SEED, TRAIN_ROWS = 1, 120


@dataclass(frozen=True)
class Model:
    """What a task's model takes and gives, as the training side's data spec states it."""

    pipeline: str
    features: int
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    width: int  # values per row of the raw output

    def raw_output(self, task: Task) -> str:
        """``pipeline_core/config/sections.py`` ``output_names``: ``prediction`` for regression, else ``logits``."""
        return "prediction" if task == "regression" else "logits"

    def outputs(self, task: Task) -> list[str]:
        """The raw output and, for a classifier, ``probabilities`` (the export's default)."""
        raw = self.raw_output(task)
        return [raw] if task == "regression" else [raw, "probabilities"]


IRIS = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
TABULAR: dict[str, Model] = {
    "multiclass": Model("iris", 4, IRIS, ("setosa", "versicolor", "virginica"), 3),
    "binary": Model("moons", 2, ("x1", "x2"), ("0", "1"), 1),
    "regression": Model("linear", 3, (), (), 1),  # the synthetic regression data names no features
}
IMAGES: dict[str, Model] = {
    "multiclass": Model("digit_images", 64, (), tuple(str(digit) for digit in range(10)), 10),
    "binary": Model("dark_or_light", 64, (), ("dark", "light"), 1),
    "regression": Model("brightness", 64, (), (), 1),
}


def model_of(task: Task, image: bool = False) -> Model:
    return (IMAGES if image else TABULAR)[task]


def _weights(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    return (rng.standard_normal((rows, columns)) / np.sqrt(rows)).astype(np.float32)


def make_model(task: Task, image: bool = False, seed: int = 0, hidden: int = 8) -> onnx.ModelProto:
    """A two-layer MLP (MatMul, Add, Relu) with a dynamic batch axis named ``batch``. An image model
    takes uint8 pixels [batch, 1, 8, 8] and scales them itself, as the training side's image models do.
    The output bias centres each raw output on the stand-in training rows, so sample rows fall in
    every class (a test whose rows all get one label could not see labels go wrong)."""
    spec, rng = model_of(task, image), np.random.default_rng(seed)
    names = spec.outputs(task)
    scale = np.float32(4 / 255)  # pixels 0-255 to 0-4, about the spread of the tabular inputs
    w1, b1, w2 = _weights(rng, spec.features, hidden), (0.1 * rng.standard_normal(hidden)).astype(np.float32), _weights(rng, hidden, spec.width)
    train = sample_inputs(task, image, TRAIN_ROWS, TRAIN_SEED).reshape(TRAIN_ROWS, -1).astype(np.float32) * (scale if image else 1)
    b2 = -np.median(np.maximum(train @ w1 + b1, 0) @ w2, axis=0).astype(np.float32)
    initializers = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                    numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")]
    nodes, first = [], INPUT
    if image:
        initializers.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"))
        nodes += [helper.make_node("Cast", [INPUT], ["pixels"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["pixels", "scale"], ["scaled"]),
                  helper.make_node("Flatten", ["scaled"], ["flat"], axis=1)]
        first = "flat"
    nodes += [helper.make_node("MatMul", [first, "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["h2"]),
              helper.make_node("Relu", ["h2"], ["h3"]), helper.make_node("MatMul", ["h3", "w2"], ["h4"]),
              helper.make_node("Add", ["h4", "b2"], [names[0]])]
    if task == "multiclass":
        nodes.append(helper.make_node("Softmax", [names[0]], ["probabilities"], axis=1))
    elif task == "binary":
        nodes.append(helper.make_node("Sigmoid", [names[0]], ["probabilities"]))
    shape = ["batch", *IMAGE_SHAPE] if image else ["batch", spec.features]
    graph = helper.make_graph(
        nodes, spec.pipeline, [helper.make_tensor_value_info(INPUT, TensorProto.UINT8 if image else TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", spec.width]) for name in names], initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def versions() -> dict[str, str]:
    """``pipeline_core.run.artifacts.versions``: Python, the platform and the packages found."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("onnx", "onnxruntime-gpu", "onnxruntime", "numpy"):
        try:
            found[package] = distributions.version(package)
        except distributions.PackageNotFoundError:
            continue
    return found


def input_range(task: Task, image: bool = False) -> dict[str, Any]:
    """``pipeline_core.export.bundle.input_range``: each feature's smallest and largest value in the training
    split (per channel for images), here seeded rows standing in for one."""
    rows = sample_inputs(task, image, TRAIN_ROWS, TRAIN_SEED).astype(np.float64)
    per = "channel" if image else "feature"
    axes = (0, 2, 3) if image else 0
    values = rows if image else rows.reshape(len(rows), -1)
    return {"per": per, "split": "train", "rows": len(rows), "min": values.min(axis=axes).tolist(), "max": values.max(axis=axes).tolist()}


def base_metadata(task: Task, image: bool = False) -> dict[str, Any]:
    """``pipeline_core.export.bundle.bundle_metadata``'s dict for the model :func:`make_model` builds."""
    spec = model_of(task, image)
    shape = [*IMAGE_SHAPE] if image else [spec.features]
    config = f"[pipeline]\nname = {spec.pipeline!r}\nseed = 0\n"
    metrics = {"loss": 0.05, "mse": 0.05, "r2": 0.9} if task == "regression" else {"loss": 0.2, "accuracy": 0.92, "f1": 0.92}
    return {
        "producer": PRODUCER,
        "pipeline": spec.pipeline,
        "description": f"a {task} model built by deploy/tests/bundles.py",
        "task": task,
        "classes": list(spec.classes),
        "feature_names": list(spec.feature_names),
        "input": {"name": INPUT, "shape": ["batch", *shape], "dtype": "uint8" if image else "float32"},
        **({"image": {"channels": 1, "height": 8, "width": 8, "resize": []}} if image else {}),
        "outputs": [{"name": name, "shape": ["batch", spec.width]} for name in spec.outputs(task)],
        "input_range": input_range(task, image),
        "metrics": metrics,
        "training": {"data": spec.pipeline, "model": "mlp (hidden_sizes=[8])", "optimizer": "adam (lr=0.01)",
                     "loss": "mse" if task == "regression" else "cross_entropy", "seed": 0, "epochs_configured": 30,
                     "epochs_run": 30, "steps": 210, "stopped_early": False, "best_epoch": 0, "monitor": "", "resumed": False},
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "versions": versions(),
    }


def embed(model: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    """``plugins/exporters/onnx.py``: each key in ``metadata_props``, strings as-is, others as JSON."""
    helper.set_model_props(model, {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()})


def _json(path: Path, value: Any) -> None:
    """``pipeline_core.run.artifacts.json_text``: the text every JSON file of a run is written in."""
    path.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _latency_ms(path: Path, rows: np.ndarray) -> dict[str, float]:
    """Median milliseconds per call at batch 1 and the whole of ``rows``, one thread (the optimize plugin's figures)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    session = onnxruntime.InferenceSession(str(path), options, providers=[CPU])
    figures = {}
    for label, batch in (("batch_1", rows[:1]), ("batch_1024", rows[:1024])):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            session.run(None, {INPUT: batch})
            times.append((time.perf_counter() - started) * 1000)
        figures[label] = round(float(np.median(times)), 4)
    return figures


def batch_independent(path: Path, rows: np.ndarray) -> bool:
    """Whether the model in ``path`` answers each row alone as it does inside the batch of all
    ``rows`` (``plugins/export_stage.py`` records this per ONNX file; it also tries extreme rows and
    allows the float32 rounding it measured, where this asks for agreement to 1e-5)."""
    session = onnxruntime.InferenceSession(str(path), providers=[CPU])
    together = session.run(None, {INPUT: rows})
    alone = [session.run(None, {INPUT: rows[i : i + 1]}) for i in range(len(rows))]
    return all(np.allclose(np.concatenate([row[k] for row in alone]), together[k], rtol=1e-5, atol=1e-6) for k in range(len(together)))


def add_int8_variant(folder: Path, task: Task, rows: np.ndarray) -> dict[str, dict[str, Any]]:
    """``model.int8_dynamic.onnx`` from ``model.onnx`` by ``quantize_dynamic``, with exactly the
    ``metadata_props`` of ``model.onnx`` (``plugins/optimize/build.py``), and the listing
    ``metadata.json`` gives the shipped files (``plugins/optimize``'s ``make_variants``). The suite has
    no labelled split: ``rows`` (1024 of them) and the float32 model's own answers stand in for one."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / predict.MODEL, folder / f"model.{INT8}.onnx"
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    proto = onnx.load(str(target))
    del proto.metadata_props[:]
    proto.metadata_props.extend(onnx.load(str(source)).metadata_props)
    onnx.save_model(proto, str(target))
    ours, theirs = (onnxruntime.InferenceSession(str(path), providers=[CPU]).run(None, {INPUT: rows})[0] for path in (source, target))
    listing = {"file": source.name, "bytes": source.stat().st_size, "size_ratio": 1.0, "latency_ms": _latency_ms(source, rows), "providers": [CPU]}
    variant = {"file": target.name, "bytes": target.stat().st_size, "size_ratio": target.stat().st_size / source.stat().st_size,
               "latency_ms": _latency_ms(target, rows)}
    if task == "regression":
        variant["relative_error"] = float(np.abs(ours - theirs).max() / (np.ptp(ours) or 1.0))
    else:
        agreement = float(np.mean((ours > 0) == (theirs > 0)) if task == "binary" else np.mean(ours.argmax(1) == theirs.argmax(1)))
        listing["metrics"] = {"accuracy": 1.0}
        variant |= {"accuracy": {"float32": 1.0, "variant": agreement, "drop_points": round(100 * (1 - agreement), 4)},
                    "class_agreement": agreement, "metrics": {"accuracy": agreement}}
    return {"float32": listing, INT8: {**variant, "providers": [CPU]}}


def model_card(metadata: dict[str, Any]) -> str:
    """A short ``MODEL_CARD.md`` with the sections the training side's card has."""
    outputs = "\n".join(f"- `{o['name']}`: shape {o['shape']}, float32" for o in metadata["outputs"])
    spec = metadata["input"]
    return (f"# Model card: {metadata['pipeline']}\n\n{metadata['description']}\n\n## Training\n\n- Task: {metadata['task']}\n\n"
            f"## Inputs\n\n`{spec['name']}`: shape {spec['shape']}, {spec['dtype']}\n\n## Outputs\n\n{outputs}\n\n"
            "## How to call it\n\n```sh\npython predict.py . --input rows.csv --output predictions.csv\n```\n")


def seal(folder: Path) -> Path:
    """``manifest.json``: the sha256 and size of every file but itself (dotfiles left out), as
    ``pipeline_core.export.bundle.write_bundle`` seals a bundle (a signature is never listed: it signs the
    manifest). A test calls it again to reseal a file it changed, as someone forging a bundle would."""
    files = {path.name: {"sha256": _sha256(path), "bytes": path.stat().st_size}
             for path in sorted(folder.iterdir())
             if path.is_file() and path.name not in (predict.MANIFEST, predict.SIGNATURE) and not path.name.startswith(".")}
    _json(folder / predict.MANIFEST, {"format": FORMAT, "files": files})
    return folder / predict.MANIFEST


def build_bundle(folder: Path, task: Task = "multiclass", *, image: bool = False, metadata: dict[str, Any] | None = None,
                 int8: bool = False, seed: int = 0) -> Path:
    """Write a sealed bundle into ``folder`` (created) and return it. ``metadata`` is merged into
    what the exporter embeds and ``metadata.json`` states (so a test can add a field, or change one,
    in both places at once); ``int8`` adds the ``int8_dynamic`` variant."""
    folder.mkdir(parents=True, exist_ok=True)
    stated = {**base_metadata(task, image), **(metadata or {})}
    model = make_model(task, image, seed)
    embed(model, stated)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(folder / predict.MODEL))
    listed, rows = {**stated}, sample_inputs(task, image, 1024, seed + 1)
    if int8:
        listed["variants"] = add_int8_variant(folder, task, rows)
    if "batch_independent" not in listed:  # measured, unless the test states it (to check how it is obeyed)
        files = [predict.MODEL, *([f"model.{INT8}.onnx"] if int8 else [])]
        listed["batch_independent"] = {file: batch_independent(folder / file, rows[:64]) for file in files}
    for entry in listed.get("variants", {}).values():
        entry["batch_independent"] = listed["batch_independent"].get(entry["file"])
    checks = {"onnx": {"file": f"{predict.BUNDLE_DIR}/{predict.MODEL}", "passed": True, "max_abs_diff": 0.0, "max_rel_diff": 0.0,
                       "error_ratio": 0.0, "providers": [CPU]}}
    _json(folder / predict.METADATA, {**listed, "format": FORMAT, "export_checks": checks})
    (folder / "MODEL_CARD.md").write_text(model_card(stated), encoding="utf-8")
    (folder / "predict.py").write_text(standalone.script(), encoding="utf-8")
    seal(folder)
    return folder


def copy_bundle(bundle: Path, folder: Path) -> Path:
    """A copy of ``bundle`` in ``folder``, still sealed, for a test that signs or changes it (the
    session's bundles are shared by every test)."""
    return Path(shutil.copytree(bundle, folder / bundle.name))


def sample_inputs(task: Task, image: bool = False, count: int = 12, seed: int = 7) -> np.ndarray:
    """Rows the model takes: measurements in iris's range rounded to 2 decimals (so their text in a
    CSV or JSON file is exactly these float32 values), or uint8 pixels [count, 1, 8, 8]."""
    rng = np.random.default_rng(seed)
    if image:
        return rng.integers(0, 256, (count, *IMAGE_SHAPE), dtype=np.uint8)
    return np.round(rng.uniform(0.1, 7.9, (count, model_of(task).features)), 2).astype(np.float32)
