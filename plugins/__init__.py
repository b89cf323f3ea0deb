"""The built-in plugins. Each module registers its components through the same hooks a third-party
plugin uses; the host loads them by name from :data:`DEFAULT_PLUGINS` (llm's ``DEFAULT_PLUGINS``)."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.datasets.iris",
    "plugins.datasets.synthetic",
    "plugins.datasets.digits",
    "plugins.datasets.mnist",
    "plugins.datasets.csv_file",
    "plugins.models.mlp",
    "plugins.optimizers",
    "plugins.schedulers",
    "plugins.losses",
    "plugins.metrics",
    "plugins.exporters.torchscript",
    "plugins.exporters.onnx",
    "plugins.exporters.torch_export",
    "plugins.stages",
    "plugins.export_stage",
    "plugins.progress",
    "plugins.plots.curves",
    "plugins.plots.confusion",
    "plugins.plots.boundary",
    "plugins.plots.samples",
    "plugins.plots.regression",
    "plugins.trackers.jsonl",
    "plugins.report",
)
