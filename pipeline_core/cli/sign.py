"""``pipeline keygen`` and ``pipeline sign``: Ed25519 keys and signed bundle manifests.

Defined once in ``pipeline_core_deploy.cli`` (torch-free, also behind ``pipeline-deploy keygen|sign``);
deployers check a signature with ``--verify-key`` on ``predict``, ``serve`` and the bundle's ``predict.py``.
"""

from __future__ import annotations

from pipeline_core_deploy.cli import keygen, sign

COMMANDS = [keygen, sign]
