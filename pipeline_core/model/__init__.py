"""The model against the data: checked before anything trains, summarized, evaluated on a split.

check.py        the model fits the data: a dry pass that changes nothing (build_model), and from a dataset's spec (validate)
check_cache.py  passed model checks remembered by content, so ``pipeline validate`` answers without torch
summary.py      layers, output shapes, parameters (torchinfo), for inspect and the report
evaluation.py   model_outputs(), Evaluator, draw_plots(): a model's outputs on a whole split, the configured metrics, the plots
"""
