"""Export: what a run hands on, checked before it ships.

exporter.py            the Exporter protocol, ExportInfo, LoadedModel, LoadedTorchModule, the metadata helpers
verification.py        the check every exported file must pass (verify, Tolerance, Noise, measure_noise)
batch_independence.py  whether a file answers a row the same alone and inside batches with extreme rows
bundle.py              the deploy bundle: metadata.json, MODEL_CARD.md, predict.py, manifest.json; sealing
"""

from pipeline_core._moved import old_module_names

#: until the next release, the names of the old module ``pipeline_core.export`` (now ``pipeline_core.export.exporter``), with a DeprecationWarning
__getattr__ = old_module_names(__name__)
