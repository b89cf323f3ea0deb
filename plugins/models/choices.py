"""Option types the built-in models share, kept free of torch: registering a model and checking its
options (``pipeline validate``, ``pipeline plugins``) imports no torch; the layers they name are in
:mod:`pipeline_core_plugins.models.layers`, imported when a network is built."""

from __future__ import annotations

from typing import Literal

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu"]
