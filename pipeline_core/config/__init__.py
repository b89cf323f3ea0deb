"""The pipeline file: its TOML validated into one typed :class:`~pipeline_core.config.file.PipelineConfig`,
torch-free, with problems reported by file, line and dotted key.

file.py           TOML → PipelineConfig with the registry in its context; ``--set`` overrides; messages
sections.py       the host's sections as pydantic schemas; components checked against the registry
data_section.py   ``[data]``: the dataset and the host's loading keys (load, memory_limit, workers, prefetch)
sweep_section.py  ``[sweep]``: objective, budget, sampler, pruner, parameters (Optuna-free)
toml_lines.py     line numbers for dotted keys (tomllib has none)
"""

from pipeline_core._moved import old_module_names

#: until the next release, the names of the old module ``pipeline_core.config`` (now ``pipeline_core.config.file``), with a DeprecationWarning
__getattr__ = old_module_names(__name__)
