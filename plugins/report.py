"""``report.html``: one self-contained page per run (plots embedded), written after the last stage.

It holds the metrics table and confusion matrices, every plot of ``plots/index.json``, the export
checks, the model summary and the resolved configuration. It runs after every other
``after_pipeline`` hook (``trylast``) so that it sees the plots they drew.
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import RunFiles, __version__, hookimpl, scalars

if TYPE_CHECKING:
    import jinja2

    from pipeline_core import RunContext

TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _environment() -> jinja2.Environment:
    """One per process: jinja2 compiles a template once per environment, and compiling this one
    costs more than a small model's run spends writing its other files (a sweep writes one per trial)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)


def render(run: RunContext) -> str:
    """The report's HTML for ``run``."""
    from pipeline_core import summarize

    numbers: dict[str, dict[str, float]] = {}
    matrices: dict[str, Any] = {}
    for split, values in run.metrics.items():
        numbers[split] = scalars(values)
        if isinstance(values.get("confusion_matrix"), list):
            matrices[split] = values["confusion_matrix"]
    metric_names = sorted({name for values in numbers.values() for name in values})
    plots = [  # as recorded on disk: a re-export reports the plots its run drew
        {"title": plot.title, "data": base64.b64encode((run.run_dir / plot.file).read_bytes()).decode("ascii")}
        for plot in run.plots.recorded().values()
    ]
    summary = "no model was built"
    if run.model is not None and run.data is not None:
        sample = run.data.splits.get("test", run.data.splits["train"])  # a sweep's trial holds the test split out
        summary = summarize(run.model, sample.head(2).inputs.to(run.device)).text
    spec = run.data.spec if run.data is not None else None
    return _environment().get_template("report.html.j2").render(
        name=run.config.name,
        description=run.config.pipeline.description or (run.data.description if run.data else ""),
        task=spec.task if spec else "unknown",
        classes=list(spec.classes) if spec else [],
        seed=run.config.pipeline.seed,
        device=str(run.device),
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        metric_names=metric_names,
        scalar_metrics=numbers,
        matrices=matrices,
        plots=plots,
        exports=run.export_report,
        model_summary=summary,
        config=(run.run_dir / RunFiles.CONFIG).read_text(encoding="utf-8"),
        producer=f"pipeline-core {__version__}",
    )


@hookimpl(trylast=True)
def after_pipeline(run: RunContext) -> None:
    run.write_text("report.html", render(run))
