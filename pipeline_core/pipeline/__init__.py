"""A pipeline as a whole: loaded from its file with its plugins, run stage by stage, exported again.

load.py      load_pipeline(): the file, its overrides, its plugins, validated (torch-free)
runner.py    run_pipeline(): the stage list with lifecycle hooks; resume; a failed run marked where it failed
reexport.py  ``pipeline export RUN``: the export stage again on a finished run's weights
"""
