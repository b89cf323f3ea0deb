"""The ``torchvision`` model component's network: built, sized, loaded and adapted with torch and
torchvision, imported when the component builds a model (its registration and option checks are in
:mod:`pipeline_core_plugins.models.torchvision_models`, which imports no torch)."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline_core import ConfigError, DataSpec
from pipeline_core_plugins.models.layers import ChannelsLast
from pipeline_core_plugins.models.weights_file import read_state_dict

#: builders that add training-only auxiliary outputs by default; built without them
AUXILIARY_OUTPUTS = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
#: where torchvision's classifiers keep their classification layer, tried in order
HEAD_ROOTS = ("fc", "classifier", "heads", "head")


def _find(model: nn.Module, path: str, arch: str) -> nn.Module:
    names = [name for name, _ in model.named_modules() if name]
    if path not in names:
        close = difflib.get_close_matches(path, names, n=1, cutoff=0.6)
        raise ConfigError(f"model.head: {arch} has no module {path!r}{f'; did you mean {close[0]!r}?' if close else ''} (its last modules: {', '.join(names[-5:])})")
    return model.get_submodule(path)


def find_head(model: nn.Module, arch: str, head: str | None, outputs: int) -> str:
    """The module path of ``model``'s classification layer: ``head`` when given, else the last
    Linear or Conv2d under the first of :data:`HEAD_ROOTS` the model has. It must produce ``outputs``
    values (the model was built for that many classes), or it is not the head."""
    if head is None:
        for root in HEAD_ROOTS:
            if not hasattr(model, root) or not isinstance(getattr(model, root), nn.Module):
                continue
            layers = [name for name, module in getattr(model, root).named_modules() if isinstance(module, (nn.Linear, nn.Conv2d))]
            if layers:
                head = f"{root}.{layers[-1]}" if layers[-1] else root
                break
        else:
            raise ConfigError(
                f"model: cannot find the classification head of torchvision model {arch!r} (no Linear or Conv2d layer under "
                f"{', '.join(HEAD_ROOTS)}); name it with head = \"<module path>\" under [model]"
            )
    layer = _find(model, head, arch)
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise ConfigError(f"model.head: {head!r} of {arch} is a {type(layer).__name__}; the head that is resized to the data's classes must be a Linear or Conv2d layer")
    size = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if size != outputs:
        raise ConfigError(f"model.head: {head!r} of {arch} has {size} outputs, but the model was built for {outputs} classes: it is not the classification head")
    return head


def resized(layer: nn.Module, outputs: int) -> nn.Module:
    """A fresh layer like ``layer`` (a Linear or Conv2d) with ``outputs`` outputs."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, outputs, bias=layer.bias is not None)
    assert isinstance(layer, nn.Conv2d)
    return nn.Conv2d(layer.in_channels, outputs, layer.kernel_size, layer.stride, layer.padding, bias=layer.bias is not None)


def _stem(model: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))


def adapted_stem(stem: nn.Conv2d, channels: int, keep_weights: bool) -> nn.Conv2d:
    """``stem`` rebuilt for ``channels`` input channels. Trained weights carry over: summed over the
    colour channels for one channel (what a grayscale image repeated in every channel would give),
    else repeated and scaled to keep the activations' size (timm's ``adapt_input_conv``)."""
    if stem.groups != 1:
        raise ConfigError(f"model.adapt_stem: the first convolution is grouped ({stem.groups} groups) and cannot be rebuilt for {channels} channels")
    fresh = nn.Conv2d(channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, stem.dilation, bias=stem.bias is not None,
                      padding_mode=stem.padding_mode)
    if keep_weights:
        with torch.no_grad():
            weight = stem.weight
            if channels == 1:
                fresh.weight.copy_(weight.sum(dim=1, keepdim=True))
            else:
                repeats = math.ceil(channels / weight.shape[1])
                fresh.weight.copy_(weight.repeat(1, repeats, 1, 1)[:, :channels] * (weight.shape[1] / channels))
            if stem.bias is not None:
                fresh.bias.copy_(stem.bias)
    return fresh


def _mismatches(model: nn.Module, state: dict[str, torch.Tensor], head: str) -> list[str]:
    """What keeps ``state`` from loading into ``model``: tensors of other shapes, missing and
    unexpected keys (the head's may be missing: a backbone saved without it gets a fresh one)."""
    own = model.state_dict()
    shapes = [f"{key}: file {list(state[key].shape)}, model {list(own[key].shape)}" for key in own if key in state and state[key].shape != own[key].shape]
    missing = [key for key in own if key not in state and not key.startswith(f"{head}.") and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in own]
    problems = []
    for what, keys in (("tensor(s) of another shape", shapes), ("missing key(s)", missing), ("unexpected key(s)", unexpected)):
        if keys:
            problems.append(f"{len(keys)} {what} ({'; '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    return problems


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str, head: str, stem: str, channels: int) -> None:
    """Load ``state`` into ``model`` (built for the data's classes) strictly, except for the head
    and the stem. A head of another size in the file is loaded into a head of that size, then
    replaced by a fresh one for the data's classes; a file saved with a stem already adapted to the
    data's channels gets that stem first."""
    layer = model.get_submodule(head)
    outputs = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    saved_head = state.get(f"{head}.weight")
    if saved_head is not None and saved_head.shape[0] != outputs:
        _set(model, head, resized(layer, saved_head.shape[0]))
    saved_stem, stem_layer = state.get(f"{stem}.weight"), model.get_submodule(stem)
    if saved_stem is not None and saved_stem.ndim == 4 and saved_stem.shape[1] == channels != stem_layer.in_channels:
        _set(model, stem, adapted_stem(stem_layer, channels, keep_weights=False))
    problems = _mismatches(model, state, head)
    if problems:
        raise ConfigError(f"model.weights: {path} does not fit torchvision's {arch}: {'; '.join(problems)}. Was it saved from another architecture?")
    model.load_state_dict(state, strict=False)
    if saved_head is not None and saved_head.shape[0] != outputs:
        _set(model, head, resized(model.get_submodule(head), outputs))


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier with this component's switches: channels-last memory order, and a
    frozen backbone whose normalization layers stay in eval mode while the head trains (their
    running statistics belong to the weights being kept)."""

    def __init__(self, model: nn.Module, head: str, freeze_backbone: bool, channels_last: bool) -> None:
        super().__init__()
        # the input alone is reordered: convolutions follow their input's layout, and weights kept
        # contiguous export as they are
        self.layout = ChannelsLast() if channels_last else nn.Identity()
        self.model = model
        self.head = head
        self.frozen = freeze_backbone
        if freeze_backbone:
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(name.startswith(f"{head}."))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.layout(images))

    def train(self, mode: bool = True) -> TorchvisionClassifier:
        super().train(mode)
        if self.frozen and mode:
            for name, module in self.model.named_modules():
                if isinstance(module, nn.modules.batchnorm._NormBase) and name != self.head and not name.startswith(f"{self.head}."):
                    module.eval()
        return self


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _try_forward(model: nn.Module, spec: DataSpec, arch: str) -> None:
    """One eval-mode pass on a blank batch of the data's image size, so an architecture that cannot
    take it fails now, with the size named, rather than in the first training step."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, *spec.input_shape))
    except (RuntimeError, AssertionError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"model: torchvision model {arch!r} cannot take the data's {'×'.join(map(str, spec.input_shape))} (channels×height×width) "
            f"images ({type(error).__name__}: {reason}). Resize the images in the data's transforms, or choose another arch; "
            "builder_options passes size arguments to the builder (e.g. image_size for vision transformers)"
        ) from None
    finally:
        model.train(was_training)


def build(
    spec: DataSpec, *, arch: str, weights: Path | None, head: str | None, freeze_backbone: bool, channels_last: bool,
    adapt_stem: bool, builder_options: dict[str, int | float | bool | str],
) -> nn.Module:
    """The ``torchvision`` model component's network (see :func:`~pipeline_core_plugins.models.torchvision_models.torchvision`)."""
    from torchvision import models

    if len(spec.input_shape) != 3:
        raise ConfigError(f"model 'torchvision' takes images of shape (channels, height, width); the data gives inputs of shape {list(spec.input_shape)}")
    state = read_state_dict(weights) if weights is not None else None
    arguments: dict[str, Any] = {"aux_logits": False, "init_weights": True} if arch in AUXILIARY_OUTPUTS else {}
    try:
        model = models.get_model(arch, weights=None, num_classes=spec.num_outputs, **{**arguments, **builder_options})
    except TypeError as error:
        raise ConfigError(f"model.builder_options: torchvision's {arch} builder refused them: {error}") from None
    head = find_head(model, arch, head, spec.num_outputs)
    stem = _stem(model)
    channels = spec.input_shape[0]
    if state is not None:
        assert weights is not None
        state = {key: value for key, value in state.items() if not key.startswith(AUXILIARY_OUTPUTS.get(arch, ()))}
        load_weights(model, state, weights, arch, head, stem, channels)
    stem_channels = model.get_submodule(stem).in_channels
    if stem_channels != channels:
        if not adapt_stem:
            raise ConfigError(
                f"model: {arch} takes {stem_channels}-channel images but the data has {channels} channel(s) "
                f"({'×'.join(map(str, spec.input_shape))}); set adapt_stem = true under [model] to rebuild its first convolution "
                f"for {channels} channel(s) (loaded weights are summed over the colour channels), or load the images with {stem_channels} channels"
            )
        _set(model, stem, adapted_stem(model.get_submodule(stem), channels, keep_weights=state is not None))
    network = TorchvisionClassifier(model, head, freeze_backbone, channels_last)
    _try_forward(network, spec, arch)
    return network
