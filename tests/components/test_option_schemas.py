"""A component's options schema is read from its signature once per process (a sweep builds a plugin
host for every trial): the same factory gives the same schema, and a bad signature is refused every
time it is registered, with the owner of each registration named."""

from __future__ import annotations

import pytest

from pipeline_core.components.options import Schema


def _optimizer(params, *, lr: float = 0.1, momentum: float = 0.0) -> None:
    """A factory as a plugin writes one."""


def _unannotated(params, *, lr=0.1) -> None:
    """An option without a type annotation."""


def test_the_same_factory_gives_the_same_schema_and_validates_alike():
    first = Schema.from_signature(_optimizer, 1, owner="optimizer 'a' of plugin 'one'")
    again = Schema.from_signature(_optimizer, 1, owner="optimizer 'b' of plugin 'two'")
    assert again is first and first.defaults == {"lr": 0.1, "momentum": 0.0}
    model, problems = again.validate_model({"lr": 0.5})
    assert not problems and model.lr == 0.5 and model.momentum == 0.0

    def another(params, *, lr: float = 1.0) -> None: ...

    assert Schema.from_signature(another, 1, owner="x").defaults == {"lr": 1.0}  # another factory, read anew


def test_a_bad_signature_is_refused_at_every_registration_with_its_owner():
    for owner in ("optimizer 'a' of plugin 'one'", "optimizer 'a' of plugin 'two'"):
        with pytest.raises(TypeError, match=f"{owner}: option 'lr' needs a type annotation"):
            Schema.from_signature(_unannotated, 1, owner=owner)
    with pytest.raises(TypeError, match="expected 2 positional parameter"):
        Schema.from_signature(_optimizer, 2, owner="optimizer 'a'")  # the cached arity 1 does not answer for 2
