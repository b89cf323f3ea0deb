"""pipeline-core-deploy: run pipeline-core bundles with NumPy and onnxruntime alone.

The deploy side of the project, installable without PyTorch (``pip install ./deploy``):
:mod:`pipeline_core_deploy.predict` verifies a bundle against its manifest and predicts from files
(a copy of it ships in every bundle as ``predict.py``). Nothing in this package imports torch or
``pipeline_core``.
"""

__version__ = "0.1.0"
