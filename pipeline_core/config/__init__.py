"""The pipeline file: its TOML validated into one typed :class:`~pipeline_core.config.file.PipelineConfig`,
torch-free, with problems reported by file, line and dotted key.

file.py              TOML → PipelineConfig with the registry in its context; ``--set`` overrides; messages
common.py            what every section shares: problems phrased for a person, a component's table checked against the registry
pipeline_section.py  ``[pipeline]``: name, seed, stages (checked in order), plugins, device, threads
data_section.py      ``[data]``: the dataset and the host's loading keys (load, memory_limit, workers, prefetch)
train_section.py     ``[train]`` and ``[train.early_stopping]``: the loop, optimizer, loss, scheduler, checkpoints
evaluate_section.py  ``[evaluate]``: the headline split and the metrics
export_section.py    ``[export]``: formats, the export check's criterion, output names, ``[export.optimize]`` variants
sweep_section.py     ``[sweep]``: objective, budget, sampler, pruner, parameters (Optuna-free)
toml_lines.py        line numbers for dotted keys (tomllib has none)
"""

from pipeline_core._moved import old_module_names

#: until the next release, the names of the old module ``pipeline_core.config`` (now ``pipeline_core.config.file``), with a DeprecationWarning
__getattr__ = old_module_names(__name__)
