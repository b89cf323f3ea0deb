"""The sweep report: ``report.html`` (one self-contained page) and its figures as ``plots/*.png``,
drawn with Optuna's own matplotlib visualizations: optimization history, parameter importances
(fANOVA), parallel coordinates and the intermediate values the pruner saw.

A figure Optuna cannot draw yet (importances need two complete trials) is named with the reason
instead of failing the sweep.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # no display: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from optuna.visualization import matplotlib as figures  # noqa: E402

from pipeline_core.config.sweep_section import SweepSection, inline_toml  # noqa: E402
from pipeline_core.run import artifacts  # noqa: E402
from pipeline_core.run.results import scalars  # noqa: E402
from pipeline_core.sweep import space  # noqa: E402
from pipeline_core.sweep.folder import SweepFolder  # noqa: E402
from pipeline_core.version import __version__  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "sweep"
#: name → (title, how Optuna draws it, the complete trials it needs: Optuna draws an empty figure with fewer)
FIGURES: dict[str, tuple[str, Callable[[optuna.Study], Any], int]] = {
    "optimization_history": ("Optimization history: each trial's value and the best so far", figures.plot_optimization_history, 1),
    "param_importances": ("Parameter importances (fANOVA over the complete trials)", figures.plot_param_importances, 2),
    "parallel_coordinate": ("Parallel coordinates: each complete trial's values and objective", figures.plot_parallel_coordinate, 1),
    "intermediate_values": ("The objective per epoch as the pruner saw it", figures.plot_intermediate_values, 0),
}


def draw(study: optuna.Study, folder: SweepFolder) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Every figure as ``plots/<name>.png``; returns those drawn (title, file) and the reasons for those not."""
    drawn, missing = [], {}
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, (title, plot, needs) in FIGURES.items():
        if complete < needs:
            missing[title] = f"needs {needs} complete trial{'s' if needs > 1 else ''}, the study has {complete}"
            continue
        try:
            # Optuna's figures call plt.style.use("ggplot"), which would restyle every later plot of the
            # process (a run's curves after a sweep, in one Python session): rc_context puts it back
            with warnings.catch_warnings(), plt.rc_context():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            missing[title] = str(error) or type(error).__name__
            plt.close("all")
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(9, 5)
        file = Path(SweepFolder.PLOTS) / f"{name}.png"
        try:
            artifacts.atomic_write(folder.root / file, lambda temp, f=figure: f.savefig(temp, format="png", dpi=100, bbox_inches="tight"))
        finally:
            plt.close(figure)
        drawn.append({"title": title, "file": file.as_posix()})
    return drawn, missing


def _link(run_dir: str | Path, folder: SweepFolder) -> str:
    """A trial's run folder as the report links it: relative to the sweep folder when inside it."""
    path, root = Path(run_dir), folder.root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _rows(trials: list[FrozenTrial], sweep: SweepSection, folder: SweepFolder) -> list[dict[str, Any]]:
    rows = []
    for trial in trials:
        link = _link(trial.user_attrs.get("run_dir", folder.trial_dir(trial.number).resolve()), folder)
        rows.append({
            "number": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            "epochs": trial.user_attrs.get("epochs", ""),
            "seconds": trial.user_attrs.get("seconds"),
            "values": {key: inline_toml(value, 4) for key, value in space.values_of(sweep, trial.params).items()},
            "link": link,
            "note": trial.user_attrs.get("error", ""),
        })
    return rows


def write(study: optuna.Study, sweep: SweepSection, folder: SweepFolder, record: dict[str, Any]) -> Path:
    """``report.html`` and ``plots/*.png`` of ``study``; ``record`` is what ``sweep.json`` says."""
    drawn, missing = draw(study, folder)
    plots = [{**plot, "data": base64.b64encode((folder.root / plot["file"]).read_bytes()).decode("ascii")} for plot in drawn]
    best = record.get("best")
    best_file = folder.root / SweepFolder.BEST_PIPELINE
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.get_template("report.html.j2").render(
        record=record,
        best=best,
        best_link=_link(best["run_dir"], folder) if best else "",
        best_values={key: inline_toml(value, 6) for key, value in (best or {}).get("values", {}).items()},
        test_metrics=scalars((best or {}).get("test") or {}),
        best_pipeline=best_file.read_text(encoding="utf-8") if best and best_file.is_file() else "",
        keys=list(sweep.parameters),
        trials=_rows(study.get_trials(deepcopy=False), sweep, folder),
        plots=plots,
        missing=missing,
        sampler=sweep.sampler.name,
        pruner=sweep.pruner.name,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        producer=f"pipeline-core {__version__}",
    )
    return artifacts.write_text(folder.root / SweepFolder.REPORT, html)

