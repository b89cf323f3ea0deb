"""One error family for the whole framework.

The CLI turns a :class:`PipelineError` into a message and an exit code (kedro's ``KedroCliError``
pattern): a user mistake never shows a traceback unless ``--verbose`` asks for one.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the framework raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code: int = 1
    #: already shown to the user (by the process that failed); the CLI only returns the exit code
    reported: bool = False
    #: what a run folder's ``status.json`` says when this error stopped the run
    run_status: str = "failed"


class ConfigError(PipelineError):
    """The TOML file, an override or a component's options are wrong (exit code 2)."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(PipelineError):
    """A plugin failed to load or registered something invalid or conflicting (exit code 2)."""

    exit_code = 2


class RunFailed(PipelineError):
    """The pipeline ran but did not succeed: training diverged, an export check failed (exit code 1)."""

    exit_code = 1


class Interrupted(PipelineError):
    """A signal stopped the run after a checkpoint was written; the exit code is 128 + the signal."""

    run_status = "interrupted"

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number


class Pruned(PipelineError):
    """A sweep's pruner stopped a trial before its last epoch: not a failure, the run folder's status
    is ``pruned``. ``epoch`` is the last epoch that ran."""

    run_status = "pruned"

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
