"""Plots, one plugin each on the lifecycle hooks, written to ``plots/`` in the run folder.

Switch one off for a pipeline with ``[pipeline] disable_plugins = ["plugins.plots.boundary"]``.
Every plot is also recorded in ``plots/index.json`` with its title and the data it was drawn from.
"""
