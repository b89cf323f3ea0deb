"""``pipeline keygen``, ``pipeline sign`` and ``pipeline verify``: Ed25519 keys, signed bundle
manifests, and checking a bundle without predicting.

Defined once in ``pipeline_core_deploy.cli`` (torch-free, also behind ``pipeline-deploy keygen|sign|verify``);
deployers check a signature with ``verify --verify-key`` (and the same option on ``predict``, ``serve``
and the bundle's ``predict.py``).
"""

from __future__ import annotations

from pipeline_core_deploy.cli import keygen, sign, verify

COMMANDS = [keygen, sign, verify]
