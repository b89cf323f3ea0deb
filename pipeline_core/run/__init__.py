"""A run: the state its stages share, the folder it writes, what it produced, and the process it runs in.

context.py      RunContext: the state stages read and write, and hooks observe
artifacts.py    run folders, RunFiles, atomic writes, the manifest with hashes
results.py      TrainingSummary, MetricValue, scalars: a run's typed results (torch-free)
plots.py        PlotIndex (run.plots): plots/<name>.png and plots/index.json
failure.py      RunFailure: where a run failed (stage, lifecycle hook, plugin)
checkpoint.py   atomic checkpoints with every RNG; latest.json names only complete ones
signals.py      SIGINT/SIGTERM → finish the step, checkpoint, exit 130/143
distributed.py  torchrun launch, process group, rank-aware sharding and reductions
"""
