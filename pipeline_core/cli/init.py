"""``pipeline init TABLE --target COLUMN``: a pipeline file for a table people have, with the column
types the ``csv`` dataset infers written out, and model and training defaults that run as they are.

Why a command: typing a table's columns and choosing the loss for its task are what a newcomer gets
wrong first; this writes them from the file itself (read by the registered ``csv`` dataset, as a run
reads it), so the first run works and every choice is in the file to change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from pipeline_core.errors import ConfigError

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "init" / "pipeline.toml.j2"
#: the loss and the metrics a task starts with
LOSSES = {"multiclass": "cross_entropy", "binary": "bce_with_logits", "regression": "mse"}
METRICS = {"multiclass": ["loss", "accuracy", "f1", "confusion_matrix"], "binary": ["loss", "accuracy", "f1", "confusion_matrix"],
           "regression": ["loss", "mae", "r2"]}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def pipeline_text(table: Path, target: str, output: Path) -> str:
    """The pipeline file for ``table`` (read by the ``csv`` dataset) predicting ``target``, to be written at ``output``."""
    import os

    import jinja2

    from pipeline_core.data.spec import DatasetContext
    from pipeline_core.discovery.build import build_host

    dataset = build_host().registry.get("dataset", "csv")
    data = dataset.factory(DatasetContext(0, table.parent), path=table.name, target=target)
    columns = list(data.columns.kinds().items()) if data.columns is not None else [(name, "number") for name in data.spec.feature_names]
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["toml_key"] = _toml_key
    rows = sum(len(split) for split in data.splits.values())
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", table.stem).strip("_") or "table"
    return environment.get_template(TEMPLATE.name).render(
        source=table.name, output_name=output.name, target=target, rows=rows, task=data.spec.task, classes=list(data.spec.classes),
        name=name, path=Path(os.path.relpath(table.resolve(), output.resolve().parent)).as_posix(), typed=data.columns is not None,
        columns=columns, loss=LOSSES[data.spec.task], metrics=METRICS[data.spec.task],
    )


@click.command()
@click.argument("table", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--target", required=True, help="The column to predict.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="The pipeline file to write (default: TABLE's name with .toml, beside it).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
def init(table: Path, target: str, output: Path | None, force: bool) -> None:
    """Write a pipeline file for TABLE (.csv or .parquet) that predicts the column --target."""
    from pipeline_core.run.artifacts import write_text

    output = output or table.with_suffix(".toml")
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists; choose another --output, or --force to replace it")
    text = pipeline_text(table, target, output)
    write_text(output, text)
    click.echo(f"wrote {output}: run it with `pipeline run {output}`")


COMMANDS = [init]
