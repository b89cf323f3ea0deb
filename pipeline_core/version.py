"""The project's version, in a module of its own so that any part of the core can state it without
importing the public API (``pipeline_core.__version__``), which imports everything else."""

__version__ = "0.1.0"
