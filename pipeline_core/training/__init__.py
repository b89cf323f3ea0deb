"""The training engine, one module per responsibility (see :mod:`pipeline_core.training.trainer`)."""
