"""The deploy bundle: what a run hands to the people who ship its model.

``bundle/`` holds the exported files, ``metadata.json`` (what the model takes and returns, its
classes, metrics and provenance), a generated ``MODEL_CARD.md``, ``predict.py`` (the deploy side's
modules as one self-contained script, :func:`pipeline_core_deploy.standalone.script`, which needs only NumPy and onnxruntime) and ``manifest.json`` with the
sha256 of every file, which :func:`pipeline_core_deploy.predict.open_bundle` checks before loading anything.
A bundle is sealed (its manifest written) only after every export check passed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline_core.config.common import ComponentConfig
from pipeline_core.data.loaded import DataSpec, LoadedData, Split
from pipeline_core.export.exporter import ExportInfo, named_outputs
from pipeline_core.run.artifacts import replace_folder, sha256, versions, write_json, write_text
from pipeline_core.run.results import scalars
from pipeline_core.version import __version__
from pipeline_core_deploy import predict as deploy
from pipeline_core_deploy import standalone

if TYPE_CHECKING:
    from pipeline_core.run.context import RunContext

FORMAT = {"name": "pipeline-core-bundle", "version": 1}
#: The bundle's folder in a run folder.
BUNDLE_DIR = deploy.BUNDLE_DIR


def is_sealed(folder: Path) -> bool:
    """Whether ``folder`` is a sealed bundle: one whose manifest was written after every check passed."""
    return (folder / deploy.MANIFEST).is_file()


def unseal_bundle(folder: Path) -> bool:
    """Take the seal off ``folder`` (its manifest, and a signature of it): what it holds stays for
    inspection, but no deploy tool accepts it. Returns whether it was sealed."""
    if not is_sealed(folder):
        return False
    (folder / deploy.SIGNATURE).unlink(missing_ok=True)
    (folder / deploy.MANIFEST).unlink()
    return True


def _describe(component: ComponentConfig | None, absent: str) -> str:
    if component is None:
        return absent
    options = ", ".join(f"{k}={v}" for k, v in component.options.items())
    return f"{component.name} ({options})" if options else component.name


def bundle_metadata(run: RunContext, info: ExportInfo, reference: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """What a deployer needs to know about the model ``info`` describes, JSON-ready: the pipeline,
    task, classes and features, the input and outputs (as ``reference`` produces them on ``example``),
    the headline metrics, what produced the weights (epochs actually run), the config hash, versions.
    Exporters embed it in their files; the bundle's ``metadata.json`` and model card state it."""
    data, config, train = run.require_data("export"), run.config, run.config.train
    with torch.no_grad():
        outputs = named_outputs(reference(example), info.output_names)
    batch = "batch" if info.dynamic_batch else len(example)
    training = {
        "data": _describe(config.data, "unknown"),
        "model": _describe(config.model, "unknown"),
        "optimizer": _describe(run.optimizer_config() if train else None, "none"),
        "loss": _describe(run.loss_config(data.spec.task) if train else None, "none"),
        "seed": config.pipeline.seed,
        **(run.training.as_dict() if run.training else {}),
    }
    return {
        "producer": f"pipeline-core {__version__}",
        "pipeline": config.name,
        "description": config.pipeline.description or data.description,
        "task": data.spec.task,
        "classes": list(data.spec.classes),
        **_inputs(data, info, batch),
        **({"image": image_metadata(data.spec)} if data.spec.image is not None else {}),
        "outputs": [{"name": name, "shape": [batch, *value.shape[1:]]} for name, value in outputs.items()],
        "metrics": run.metrics.get(config.evaluate.split, {}),
        "training": training,
        "config_sha256": config.sha256(),
        "versions": versions(),
    }


#: what ``metadata.json`` calls the input of a model that takes raw columns (one ONNX input per column)
COLUMNS_INPUT = "columns"


def _inputs(data: LoadedData, info: ExportInfo, batch: int | str) -> dict[str, Any]:
    """``metadata.json``'s feature names, input and training range; for a table of typed columns,
    the raw columns ``model.onnx`` takes (``columns``, each with its type and the values it knows),
    and the encoded matrix the network takes (``encoded_input``: what TorchScript and .pt2 files take)."""
    encoded = {"name": info.input_name, "shape": [batch, *data.spec.input_shape], "dtype": str(data.spec.input_dtype).removeprefix("torch.")}
    if data.columns is None:
        return {"feature_names": list(data.spec.feature_names), "input": encoded, "input_range": input_range(data)}
    encoder = data.columns.encoder
    return {
        "feature_names": encoder.names,
        "input": {"name": COLUMNS_INPUT, "shape": [batch, len(encoder.names)], "dtype": "object"},
        "columns": encoder.describe(),
        "encoded_input": {**encoded, "names": encoder.encoded_names},
    }


def input_range(data: LoadedData) -> dict[str, Any]:
    """``metadata.json``'s ``input_range``: the smallest and largest raw value of each input position
    in the training split (per channel for images, where one pixel's range says little), so the deploy
    side can flag a row far from anything the model learned from. A streamed split is measured on its
    first rows (``head``), which bounds the cost; ``rows`` says how many were seen."""
    split = data.splits["train"]
    inputs = split.inputs if isinstance(split, Split) else split.head().inputs
    per = "channel" if data.spec.image is not None else "feature"
    if per == "channel":  # over every axis but the channel axis: no copy of the split
        axes = (0, *range(2, inputs.ndim))
        low, high = inputs.amin(dim=axes), inputs.amax(dim=axes)
    else:
        flat = inputs.reshape(len(inputs), -1)
        low, high = flat.amin(dim=0), flat.amax(dim=0)
    return {"per": per, "split": "train", "rows": len(inputs), "min": low.double().tolist(), "max": high.double().tolist()}


def image_metadata(spec: DataSpec) -> dict[str, Any]:
    """``metadata.json``'s ``image``: what a deploy side does to an image file to make it one input
    (decode to ``channels``, apply ``resize`` in order, end at ``height`` × ``width``)."""
    assert spec.image is not None
    channels, height, width = spec.input_shape
    return {"channels": channels, "height": height, "width": width, "resize": [dict(step) for step in spec.image.resize]}


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in scalars(metrics).items())
    return f"| metric | value |\n|---|---|\n{rows}"


def _independence(entry: dict[str, Any]) -> str:
    """A file's batch independence for the model card: measured for ONNX files only."""
    if "batch_independent" not in entry:
        return "—"
    return "yes" if entry["batch_independent"] else "**no**: each row runs alone"


def _checks_table(report: dict[str, dict[str, Any]]) -> str:
    rows = "\n".join(
        f"| {Path(entry['file']).name} | {'passed' if entry['passed'] else 'FAILED'} | {entry['max_abs_diff']:.2e} | "
        f"{entry['error_ratio']:.3f} | {', '.join(entry['providers'])} | {_independence(entry)} |"
        for entry in report.values()
    )
    header = ("| file | check | max abs diff vs eager PyTorch | worst difference / tolerance | ran on | batch independent |\n"
              "|---|---|---|---|---|---|")
    return f"{header}\n{rows}"


def _variant_quality(entry: dict[str, Any]) -> str:
    if "accuracy" in entry:
        accuracy = entry["accuracy"]
        return f"accuracy {accuracy['float32']:.4f} → {accuracy['variant']:.4f}, classes agree on {entry['class_agreement']:.2%}"
    return f"outputs within {entry['relative_error']:.2e} of their spread" if "relative_error" in entry else ""


def _variants_section(metadata: dict[str, Any], export_report: dict[str, dict[str, Any]]) -> str:
    """The optimized variants: those shipped with their measured cost and accuracy, those left out and why."""
    gated = {name: entry for report in export_report.values() for name, entry in report.get("variants", {}).items()}
    if not gated:
        return ""
    listed = metadata.get("variants", {})
    rows = "\n".join(
        f"| {name} | {entry['file']} | {entry['bytes']:,} ({entry['size_ratio']:.2f}×) | {entry['latency_ms']['batch_1']:.4f} | "
        f"{entry['latency_ms']['batch_1024']:.4f} | {_variant_quality(gated[name]) if name in gated else 'the reference'} | "
        f"{_independence(entry)} |"
        for name, entry in listed.items()
    )
    left_out = "".join(f"\n- **{name}** was left out: {entry['reason']}" for name, entry in gated.items() if not entry["shipped"])
    notes = "".join(f"\n- **{name}**: {entry['note']}" for name, entry in gated.items() if entry.get("note"))
    rows_checked = next((entry["rows"] for entry in gated.values() if "rows" in entry), "all")
    return f"""
## Variants

Each variant of `model.onnx` was run over the whole test split ({rows_checked} rows) and compared with it
(class agreement, the pipeline's metrics, the largest output differences) before it was kept; a
variant that lost more than its tolerance was left out. Latency: median milliseconds per call,
onnxruntime's CPU provider, one thread.

| variant | file | bytes (× float32) | batch 1 (ms) | batch 1024 (ms) | on the test split | batch independent |
|---|---|---|---|---|---|---|
{rows}
{left_out}{notes}

Choose one with `python predict.py . --variant NAME --input rows.csv` (or `pipeline serve --variant NAME`).
"""


def _epochs(training: dict[str, Any]) -> str:
    """The epochs that really ran: early stopping and resumed runs differ from ``train.epochs``."""
    if "epochs_run" not in training:
        return "not trained in this run"
    text = f"{training['epochs_run']} of {training['epochs_configured']} configured epochs"
    if training.get("steps") is not None:
        text += f", {training['steps']} optimizer steps"
    if training.get("stopped_early"):
        text += f"; stopped early on {training.get('monitor') or 'its monitor'}"
        if training.get("best_epoch"):
            text += f", weights from epoch {training['best_epoch']} (the best)"
    if training.get("resumed"):
        text += "; resumed from a checkpoint"
    return text


def _image_note(metadata: dict[str, Any]) -> str:
    image = metadata.get("image")
    if not image:
        return ""
    steps = ", then ".join(f"{step['op'].replace('_', ' ')} to {'×'.join(map(str, step['size']))}" for step in image.get("resize", []))
    return (f" The inputs are images: {image['channels']}×{image['height']}×{image['width']} (channels×height×width) pixels, 0–255. "
            f"`predict.py` also takes PNG or JPEG files (`--input photo.png`, or a folder of them), decoded to {image['channels']} "
            f"channel(s){f', {steps}' if steps else ''} and resized to {image['height']}×{image['width']} as the data pipeline did.")


def _range_note(metadata: dict[str, Any]) -> str:
    """The training range of the inputs, as ``metadata.json`` records it, in words and (for a few features) figures."""
    record = metadata.get("input_range")
    if not record:
        return ""
    names = metadata.get("feature_names") or []
    figures = ""
    if record["per"] == "feature" and len(record["min"]) <= 12:
        labels = names if len(names) == len(record["min"]) else [f"value {i + 1}" for i in range(len(record["min"]))]
        figures = ": " + "; ".join(f"{label} {low:.4g} to {high:.4g}" for label, low, high in zip(labels, record["min"], record["max"], strict=True))
    return (f"\n\nTraining range ({record['rows']} rows of the {record['split']} split, per {record['per']}){figures}. "
            "`pipeline serve` flags rows far outside it in its answers, and `predict.py --range-check flag|refuse` flags or refuses them.")


def _column_line(column: dict[str, Any]) -> str:
    if column["type"] == "number":
        return f"- `{column['name']}`: number, float32 (NaN for a blank: filled with {column['fill']:.6g})"
    if column["type"] == "binary":
        return f"- `{column['name']}`: yes/no, string ({'/'.join(column['true'])} or {'/'.join(column['false'])}, any case; \"\" for a blank)"
    values = column["values"]
    shown = ", ".join(values[:12]) + (f" and {len(values) - 12} more" if len(values) > 12 else "")
    return f"- `{column['name']}`: category, string, one of {shown} (\"\" for a blank; a value never seen in training counts as unknown)"


def _inputs_note(metadata: dict[str, Any]) -> str:
    """The Inputs section: one input per raw column, or the one input tensor."""
    features = metadata.get("feature_names") or []
    if "columns" in metadata:
        encoded = metadata["encoded_input"]
        lines = "\n".join(_column_line(column) for column in metadata["columns"])
        return (f"`model.onnx` takes the raw columns, one input each, named as the column, shape [batch, 1]; it fills blanks, "
                f"scales and one-hot encodes them itself, with statistics of the training split:\n\n{lines}\n\n"
                f"`predict.py` reads them from a CSV or JSON file with strings and blanks. TorchScript and .pt2 files take the "
                f"encoded matrix instead (`{encoded['name']}`: shape {encoded['shape']}, float32, columns "
                f"{', '.join(encoded['names'][:8])}{' …' if len(encoded['names']) > 8 else ''}).")
    return (f"`{metadata['input']['name']}`: shape {metadata['input']['shape']}, {metadata['input']['dtype']}, **raw** values (the\n"
            f"model applies its own preprocessing).{' Features, in order: ' + ', '.join(features) + '.' if features else ''}"
            f"{_image_note(metadata)}{_range_note(metadata)}")


def _call_example(metadata: dict[str, Any]) -> str:
    """One line of Python that calls model.onnx with onnxruntime."""
    if "columns" in metadata:
        def feed(column: dict[str, Any]) -> str:
            value, dtype = ("np.nan", "np.float32") if column["type"] == "number" else ('""', "object")
            return f'"{column["name"]}": np.array([[{value}]], dtype={dtype})'

        feeds = ", ".join(feed(column) for column in metadata["columns"][:3])
        more = ", ..." if len(metadata["columns"]) > 3 else ""
        return f"outputs = session.run(None, {{{feeds}{more}}})  # one [rows, 1] array per column (blanks here)"
    features = metadata.get("feature_names") or []
    first_row = ", ".join("…" for _ in features[:4]) if features else "…"
    return f'outputs = session.run(None, {{"{metadata["input"]["name"]}": np.array([[{first_row}]], dtype=np.{metadata["input"]["dtype"]})}})'


def model_card(metadata: dict[str, Any], export_report: dict[str, dict[str, Any]], training: dict[str, Any]) -> str:
    """A Markdown model card generated from the run: data, training, metrics, inputs, outputs, usage."""
    classes = metadata.get("classes") or []
    outputs = "\n".join(f"- `{o['name']}`: shape {o['shape']}, float32" for o in metadata["outputs"])
    return f"""# Model card: {metadata['pipeline']}

{metadata.get('description') or 'A model trained with pipeline-core.'}

## Training

- Task: {metadata['task']}{f" ({len(classes)} classes: {', '.join(classes)})" if classes else ''}
- Data: {training.get('data', 'unknown')}
- Model: {training.get('model', 'unknown')}
- Optimizer: {training.get('optimizer', 'unknown')}; loss: {training.get('loss', 'unknown')}
- Training: {_epochs(training)}
- Seed: {training.get('seed', 'unknown')}; config sha256: `{metadata.get('config_sha256', '')}`

## Test metrics

{_metrics_table(metadata.get('metrics', {}))}

## Inputs

{_inputs_note(metadata)}

## Outputs

{outputs}

## Export checks

Each file was reloaded from disk and compared with the eager PyTorch model on the test split, at
several batch sizes and on the whole split: an output passes when it differs from eager PyTorch by at
most a few times eager's own float32 rounding error (measured against a float64 twin of the model),
and predicted classes agree wherever eager's decision is clear. Each ONNX file was also checked for
batch independence: every row answered alone and inside batches holding rows far outside the
training range must get the same answer. A file that is not batch independent (a dynamically
quantized one scales each batch by its largest value) is run one row at a time by `predict.py` and
`pipeline serve`, which never batches requests together for it.

{_checks_table(export_report)}
{_variants_section(metadata, export_report)}
## How to call it

With only NumPy and onnxruntime installed (`pip install numpy onnxruntime`):

```sh
python -P predict.py . --input rows.csv --output predictions.csv     # .csv, .npy, .json or .parquet in
```

(`-P`: Python does not put this folder on its import path, so no file added to it can run; to trust
a bundle from elsewhere, check it first with `pipeline-deploy verify . --verify-key KEY`.)

or from Python:

```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
{_call_example(metadata)}
```

Versions that made it: {', '.join(f"{k} {v}" for k, v in metadata.get('versions', {}).items())}.
"""


def write_bundle(
    folder: Path, metadata: dict[str, Any], export_report: dict[str, dict[str, Any]], training: dict[str, Any]
) -> Path:
    """Complete ``folder`` (which already holds the exported files) and seal it with its manifest."""
    checks = {
        name: {key: entry[key] for key in ("file", "passed", "max_abs_diff", "max_rel_diff", "error_ratio", "providers")}
        for name, entry in export_report.items()
    }
    write_json(folder / deploy.METADATA, {**metadata, "format": FORMAT, "export_checks": checks})
    write_text(folder / "MODEL_CARD.md", model_card(metadata, export_report, training))
    write_text(folder / "predict.py", standalone.script())
    files = {
        path.name: {"sha256": sha256(path), "bytes": path.stat().st_size}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != deploy.MANIFEST and not path.name.startswith(".")
    }
    return write_json(folder / deploy.MANIFEST, {"format": FORMAT, "files": files})


def seal_bundle(staging: Path, target: Path, metadata: dict[str, Any], export_report: dict[str, dict[str, Any]]) -> Path:
    """Seal ``staging`` (which holds exported files that passed their checks) with its metadata,
    model card, ``predict.py`` and manifest, then put it in place of ``target`` whole."""
    write_bundle(staging, metadata, export_report, metadata["training"])
    return replace_folder(staging, target)


def read_metadata(folder: Path) -> dict[str, Any]:
    return json.loads((folder / deploy.METADATA).read_text(encoding="utf-8"))
