"""Plots, one plugin each (``register_plots``), drawn by the evaluate stage into ``plots/`` in the
run folder; each draws what applies to the run (a decision boundary for two features, image grids
for images, ...).

Switch one off for a pipeline with ``[pipeline] disable_plugins = ["plugins.plots.boundary"]``.
Every plot is also recorded in ``plots/index.json`` with its title and the data it was drawn from.
"""
