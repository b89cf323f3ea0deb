"""Reading a weights file for a model safely: a state dict loaded with ``weights_only=True``.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only, so a weights file
cannot run code. Files saved as a whole module, or that are not PyTorch files at all, are refused
with what to do instead. Common wrappings are unwrapped: a checkpoint holding the weights under
``state_dict`` or ``model``, a DataParallel/DDP ``module.`` prefix, and a pipeline-core run's
``weights.pt`` (the network's weights under ``network.``, its preprocessing under ``preprocess.``).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from pipeline_core import ConfigError

#: prefixes removed, in order, when every key has them
PREFIXES = ("network.", "model.", "module.")


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(key.startswith("network.") for key in state):  # a pipeline-core weights.pt: drop the preprocessing
        state = {key: value for key, value in state.items() if not key.startswith("preprocess.")}
    for prefix in PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the state dict in ``path``; a :class:`ConfigError` naming ``model.weights``
    and the file when it is missing, unreadable, not a plain state dict or empty."""
    if not path.is_file():
        raise ConfigError(f"model.weights: no file at {path}")
    with open(path, "rb") as stream:
        pickled = stream.read(1) == b"\x80"  # the legacy (pre-1.6) format is a bare pickle stream
    if not zipfile.is_zipfile(path) and not pickled:
        raise ConfigError(f"model.weights: {path} cannot be read as a PyTorch weights file (neither torch.save's zip archive nor its older pickle format)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused an object: a pickled module or custom class
        reason = next((line.strip() for line in str(error).splitlines() if "Unsupported global" in line), str(error).strip().splitlines()[0])
        raise ConfigError(
            f"model.weights: {path} is not a plain state dict; torch.load(weights_only=True) refused it ({reason.split('. Please use')[0][:200]}). "
            "Save the weights with torch.save(model.state_dict(), path)"
        ) from None
    except Exception as error:  # not a PyTorch file, truncated, or from an incompatible writer
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(f"model.weights: {path} cannot be read as a PyTorch weights file ({type(error).__name__}: {first})") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        what = "an empty dict" if isinstance(loaded, dict) and not loaded else f"a {type(loaded).__name__}" if not isinstance(loaded, dict) else "a dict of other things than tensors"
        raise ConfigError(f"model.weights: {path} holds {what}, not a state dict (parameter names → tensors); save model.state_dict()")
    return _strip(dict(loaded))
