"""``pipeline serve``: the deploy distribution's server command in the training CLI.

The command is defined once, in ``pipeline_core_deploy.serve.cli`` (torch-free, also behind
``pipeline-deploy serve``); nothing on this path imports torch (a test checks it).
"""

from __future__ import annotations

from pipeline_core_deploy.serve.cli import serve

COMMANDS = [serve]
