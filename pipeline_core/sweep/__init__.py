"""Hyperparameter sweeps on Optuna: ``pipeline sweep FILE`` searches the ``[sweep]`` table of a
pipeline file (:mod:`pipeline_core.config.sweep_section`), one ordinary run folder per trial.

One purpose per module: :mod:`.folder` names a sweep's files (Optuna-free, read by ``pipeline
runs``); :mod:`.space` draws a trial's values; :mod:`.storage` opens the study's storage;
:mod:`.study` creates the study with its sampler, pruner and shared budget; :mod:`.worker` runs a
worker's loop over it; :mod:`.trial` runs one trial as a pipeline run and reports each epoch to the
pruner; :mod:`.processes` starts ``--jobs`` worker processes;
:mod:`.results` selects the best trial and scores it on the test split once; :mod:`.report` draws
the sweep report; :mod:`.coordinator` puts them together for the command.
"""
