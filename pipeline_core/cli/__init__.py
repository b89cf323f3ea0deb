"""The ``pipeline`` command line: a click group, one module per command group.

Errors the framework raises on purpose (:class:`PipelineError`) become a message and an exit code at
this boundary (0 success, 1 the run failed, 2 bad usage or config); the traceback is shown only with
``--verbose``. Plugins add commands through the ``register_commands`` hook.
"""

from __future__ import annotations

import gc
import os
import traceback
from typing import Any

import click

from pipeline_core.errors import ConfigError, PipelineError

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _silent_worker(error: BaseException) -> bool:
    """In a data-parallel job, the launcher reports a failure once: ranks other than 0 stay silent,
    and rank 0 stays silent when it only lost contact with a rank that failed first."""
    from pipeline_core.run import distributed

    if not distributed.launched():
        return False
    return os.environ.get("RANK", "0") != "0" or distributed.is_peer_failure(error)


def report_error(error: BaseException, verbose: bool) -> int:
    """Print ``error`` for a person and return the exit code it maps to."""
    code = error.exit_code if isinstance(error, PipelineError) else 1
    if _silent_worker(error) and not verbose:
        from pipeline_core.run import distributed

        return distributed.PEER_LOST_EXIT if distributed.is_peer_failure(error) else code
    if getattr(error, "reported", False) and not verbose:
        return code
    if verbose:
        traceback.print_exception(error)
    if isinstance(error, ConfigError) and len(error.problems) > 1:
        click.secho(f"error: {len(error.problems)} problems:", fg="red", err=True)
        for problem in error.problems:
            click.echo(f"  - {problem}", err=True)
    elif isinstance(error, PipelineError):
        click.secho(f"error: {error}", fg="red", err=True)
    else:
        click.secho(f"internal error: {type(error).__name__}: {error}", fg="red", err=True)
        if not verbose:
            click.echo("(run with --verbose for the traceback)", err=True)
    return code


class PipelineGroup(click.Group):
    """A group that turns framework errors into clean messages and exit codes, and loads plugin
    commands (``register_commands``) only when a command is not built in, so built-in commands such
    as ``predict`` never pay for importing every plugin (and torch).

    Only installed plugins (entry points) can add commands: no built-in implements
    ``register_commands`` (tests/cli/test_cli_startup.py pins it). Where none is installed, listing the commands
    (``pipeline --help``) loads no plugin at all; where some are, every plugin loads as for a run, so
    one that clashes with a built-in is still named as broken."""

    plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self.plugins_loaded:
            return
        self.plugins_loaded = True
        from pipeline_core.discovery.builtins import installed_plugins

        if not installed_plugins():
            return
        from pipeline_core.discovery.build import build_host

        try:
            host = build_host(keep_broken=True)  # a broken plugin must not hide the others' commands
            host.hook.register_commands(cli=self)
        except PipelineError as error:
            # nor the built-in commands that help diagnose it
            click.secho(f"warning: plugin commands unavailable: {error}", fg="yellow", err=True)
            return
        for name in host.broken:
            click.secho(f"warning: plugin {name!r} is broken and left out (see `pipeline plugins`)", fg="yellow", err=True)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as error:
            ctx.exit(report_error(error, bool(ctx.obj and ctx.obj.get("verbose"))))


@click.group(cls=PipelineGroup, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="pipeline-core")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Declarative, plugin-based training pipelines for PyTorch."""
    ctx.ensure_object(dict)["verbose"] = verbose


def _add_builtin_commands() -> None:
    from pipeline_core.cli import (
        export,
        init,
        inspect,
        plugin_authoring,
        plugin_listing,
        predict,
        run,
        runs,
        serve,
        sign,
        sweep,
        validate,
    )

    for module in (run, sweep, export, validate, init, inspect, predict, serve, sign, runs, plugin_listing, plugin_authoring):
        for command in module.COMMANDS:
            cli.add_command(command)


_add_builtin_commands()


def main() -> None:
    """Console-script entry point.

    Once the command is done, every object still alive is moved out of the garbage collector's reach
    (``gc.freeze``): the interpreter's exit then skips collection passes over the millions of objects
    torch, its compiler stack and the ONNX exporter leave behind (measured: the exit of a process that
    imported torch and torch._dynamo took 2.1 s, 0.6 s frozen), while atexit handlers, thread joins,
    stream flushes and the freeing of module state run as usual.
    """
    try:
        cli(prog_name="pipeline")
    finally:
        gc.freeze()
