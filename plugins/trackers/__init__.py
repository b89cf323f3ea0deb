"""Experiment trackers on the lifecycle hooks. ``jsonl`` is always on; ``tensorboard`` is opt-in:
``[pipeline] plugins = ["plugins.trackers.tensorboard"]`` with ``pip install -e '.[tensorboard]'``."""
