"""``pipeline predict``: the deploy distribution's predict command in the training CLI.

The command is defined once, in ``pipeline_core_deploy.cli`` (torch-free, also behind
``pipeline-deploy predict``); nothing on this path imports torch (a test checks it), so predictions
start fast and the same code runs where only NumPy and onnxruntime are installed.
"""

from __future__ import annotations

from pipeline_core_deploy.cli import predict

COMMANDS = [predict]
