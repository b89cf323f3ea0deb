"""Why a run did not succeed: in which stage, in which plugin's lifecycle hook or plot, with what error.

A run fails wherever anything raises: a stage, or any lifecycle hook around it (``before_pipeline``
to ``after_pipeline``, ``on_epoch_end`` inside training, ``on_stage_error`` itself). The runner
records one :class:`RunFailure` in ``status.json`` and on ``run.failure``. The plugin at fault is read
from the traceback: the innermost frame that is one of the loaded plugins' hook implementations, or
one of their plots (which the evaluate stage draws).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline_core.errors import PipelineError

if TYPE_CHECKING:
    from pipeline_core.components.host import Host


@dataclass(frozen=True)
class RunFailure:
    """What stopped a run, as its ``status.json`` records it. ``status``: ``failed``, ``interrupted``
    or ``pruned``; ``stage``: the stage that was running (its ``before_stage``/``after_stage`` hooks
    included), ``None`` in ``before_pipeline``/``after_pipeline``; ``hook`` and ``plugin``: the
    lifecycle hook implementation that raised, if one did, or ``plot`` and ``plugin``: the plot that
    raised (in the evaluate stage); ``also``: errors raised while reporting this one (an
    ``on_stage_error`` or ``on_pipeline_error`` implementation that failed too)."""

    status: str
    error: str
    stage: str | None = None
    hook: str | None = None
    plugin: str | None = None
    also: tuple[str, ...] = ()
    plot: str | None = None

    def as_status(self) -> dict[str, Any]:
        """The ``status.json`` record: only the keys that apply."""
        record: dict[str, Any] = {"status": self.status}
        keys = (("stage", self.stage), ("hook", self.hook), ("plot", self.plot), ("plugin", self.plugin))
        record.update({key: value for key, value in keys if value})
        record["error"] = self.error
        if self.also:
            record["also"] = list(self.also)
        return record

    @property
    def where(self) -> str:
        """``the after_pipeline hook of plugin 'plugins.report'``, ``the plot 'curves' of plugin
        'plugins.plots.curves' during stage 'evaluate'``, ``stage 'train'``, or a hook and a stage."""
        parts = []
        if self.hook:
            parts.append(f"the {self.hook} hook of plugin {self.plugin!r}")
        elif self.plot:
            parts.append(f"the plot {self.plot!r} of plugin {self.plugin!r}")
        if self.stage:
            parts.append(f"{'during ' if parts else ''}stage {self.stage!r}")
        return " ".join(parts) or "the run"


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _code(function: Any) -> Any:
    return getattr(getattr(function, "__func__", function), "__code__", None)


def culprit(error: BaseException, host: Host) -> tuple[str | None, str | None, str] | None:
    """``(hook, plot, plugin)``: the lifecycle hook implementation or the plot whose code raised
    ``error`` (the innermost one in its traceback; the other of the two is ``None``), and its
    plugin; ``None`` when neither is in it."""
    codes: dict[Any, tuple[str | None, str | None, str]] = {}
    for name, caller in vars(host.manager.hook).items():
        if name.startswith(("_", "register_")) or not caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if (code := _code(impl.function)) is not None:
                codes[code] = (name, None, impl.plugin_name)
    for plot in host.registry.of_kind("plot"):
        if (code := _code(plot.factory)) is not None:
            codes.setdefault(code, (None, plot.name, plot.plugin))
    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        found = codes.get(frame.f_code, found)
    return found


def hook_culprit(error: BaseException, host: Host) -> tuple[str, str] | None:
    """The lifecycle hook and the plugin whose implementation raised ``error`` (the innermost one in
    its traceback), or ``None`` when no hook implementation is (:func:`culprit` finds plots too)."""
    found = culprit(error, host)
    return (found[0], found[2]) if found is not None and found[0] is not None else None


def failure_of(error: BaseException, stage: str | None, host: Host) -> RunFailure:
    """``error``, raised while ``stage`` ran (``None``: outside every stage), as a :class:`RunFailure`."""
    status = error.run_status if isinstance(error, PipelineError) else "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    hook, plot, plugin = culprit(error, host) or (None, None, None)
    return RunFailure(status, describe_error(error), stage, hook, plugin, plot=plot)
