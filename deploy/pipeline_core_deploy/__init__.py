"""pipeline-core-deploy: run pipeline-core bundles with NumPy and onnxruntime alone.

The deploy side of the project, installable without PyTorch (``pip install ./deploy``):
:mod:`pipeline_core_deploy.predict` verifies a bundle against its manifest and predicts from files
(the work split by responsibility into the modules its docstring lists; a one-file build of them,
:func:`pipeline_core_deploy.standalone.script`, ships in every bundle as ``predict.py``), and
:mod:`pipeline_core_deploy.serve` serves bundles. Nothing in this package imports torch or
``pipeline_core``.
"""

__version__ = "0.1.0"
