"""What flows from a dataset to the models and metrics: the spec, the splits, the loaded data.

spec.py           DataSpec, ImageSpec, DatasetContext, Task: a problem's shape, known before loading
splits.py         Split: inputs and targets as whole tensors (and a training augmentation)
streaming.py      StreamedSplit: a split decoded row by row in DataLoader workers
worker_deaths.py  a dead DataLoader worker, however torch reports it, as a failed run naming its split
loaded.py         LoadedData (a loaded dataset), Predictions, class_indices
placement.py      place_splits(): streamed splits decoded into memory or kept streamed, as [data] says
images.py         ScaleImages: raw 0–255 pixels to the network's input, inside the model
tabular.py        split_options, SplitOptions, check_fractions (torch-free); tabular_split.py: split_tabular, Standardize
"""

from pipeline_core._moved import old_module_names

#: until the next release, the names of the old module ``pipeline_core.data`` (now ``pipeline_core.data.loaded``), with a DeprecationWarning
__getattr__ = old_module_names(__name__)
