"""Any image classifier of ``torchvision.models`` by name, sized to the data, with local weights only.

``arch`` is a builder name (``torchvision.models.list_models(module=torchvision.models)``: resnet18,
efficientnet_b0, vit_b_16, ...). The network is built without weights; ``weights`` may name a local
state-dict file (read with ``torch.load(weights_only=True)``: no code runs, nothing is downloaded;
torchvision's hub weight names are refused with the file's address to fetch by hand). The head is the
architecture's classification layer (``fc``, ``classifier[-1]``, ``heads.head``, ``head``, ...,
found automatically or named with ``head``) and is resized to the data's classes; a file whose head
already fits keeps it. ``freeze_backbone`` trains the head alone (the backbone's BatchNorm layers keep
their statistics), ``channels_last`` runs in NHWC memory order, ``adapt_stem`` rebuilds the first
convolution for images with another number of channels than the architecture's three.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import DataSpec, Register, hookimpl

if TYPE_CHECKING:  # the network is built in torchvision_build, imported when the component builds one
    from torch import nn

#: builder arguments this component sets itself
RESERVED = ("weights", "num_classes", "progress")


def classifiers() -> list[str]:
    from torchvision import models

    return list(models.list_models(module=models))


def _kind_of(arch: str) -> str | None:
    """``"segmentation"``, ``"detection"``, ... for a torchvision model that is not a classifier."""
    from torchvision import models

    if arch not in models.list_models():
        return None
    return models.get_model_builder(arch).__module__.removeprefix("torchvision.models.").split(".")[0]


def _hub_weight_names(arch: str) -> dict[str, str]:
    """torchvision's pretrained weights for ``arch``, by every name a user may write, with their address."""
    from torchvision import models

    try:
        enum = models.get_model_weights(arch)
    except (ValueError, KeyError):
        return {}
    names: dict[str, str] = {}
    for member in enum:
        for name in (member.name, f"{enum.__name__}.{member.name}"):
            names[name] = member.url
    default = getattr(enum, "DEFAULT", None)
    if default is not None:
        for name in ("DEFAULT", f"{enum.__name__}.DEFAULT"):
            names[name] = default.url
    return names


def check_torchvision(*, arch: str, weights: Path | None, freeze_backbone: bool, builder_options: dict[str, Any], **_: object) -> None:
    """Before anything is loaded: the architecture exists and is a classifier, the weights are a
    file rather than a hub name, a frozen backbone has weights, and the builder options leave this
    component's own alone."""
    names = classifiers()
    if arch not in names:
        kind = _kind_of(arch)
        if kind is not None:
            raise ValueError(f"arch: {arch!r} is a torchvision {kind} model; this component builds image classifiers (arch is one of torchvision.models.list_models(module=torchvision.models))")
        close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(name) for name in close)}? " if close else ""
        raise ValueError(f"arch: torchvision has no classification model {arch!r}; {hint}({len(names)} models: {', '.join(names[:8])}, ...; "
                         "torchvision.models.list_models(module=torchvision.models) lists them)")
    if weights is not None:
        hub = _hub_weight_names(arch)
        if str(weights) in hub:
            raise ValueError(
                f"weights: {str(weights)!r} names torchvision's pretrained weights, which would be downloaded; this component never downloads. "
                f"Fetch the file yourself ({hub[str(weights)]}) and set weights to its path"
            )
    if freeze_backbone and weights is None:
        raise ValueError("freeze_backbone: without weights the frozen backbone would stay random; set weights to a local weights file, "
                         "or leave freeze_backbone false to train the whole network")
    taken = sorted(set(builder_options) & set(RESERVED))
    if taken:
        raise ValueError(f"builder_options: {', '.join(taken)} are set by this component (weights, the head's size); remove them")


def torchvision(
    spec: DataSpec,
    *,
    arch: str,
    weights: Path | None = None,
    head: str | None = None,
    freeze_backbone: bool = False,
    channels_last: bool = False,
    adapt_stem: bool = False,
    builder_options: dict[str, int | float | bool | str] = {},  # noqa: B006 - options are validated copies, never mutated
) -> nn.Module:
    """``torchvision.models.get_model(arch)`` without weights, loaded from the local ``weights``
    file when given, its head sized to the data; see the module docstring for each option."""
    from pipeline_core_plugins.models.torchvision_build import build

    return build(spec, arch=arch, weights=weights, head=head, freeze_backbone=freeze_backbone, channels_last=channels_last,
                 adapt_stem=adapt_stem, builder_options=builder_options)


@hookimpl
def register_models(register: Register) -> None:
    register("torchvision", torchvision, check=check_torchvision)
