"""Options declared by a typed signature (or a pydantic model), and checked strictly against it.

A component is a callable. Its positional parameters are the context the host supplies (the data
spec for a model, the parameters for an optimizer, ...); its keyword-only parameters are the options a
TOML table may set. Their annotations and defaults are the schema, so a plugin author writes an
ordinary typed function and gets validation, defaults and error messages without declaring anything
twice. Validation is strict: ``"5"`` is never an ``int``, ``1`` is never a ``bool``, and an unknown key
is an error with a suggestion rather than something silently ignored.
"""

from __future__ import annotations

import difflib
import inspect
import json
import types
import typing
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic

STRICT = pydantic.ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True, frozen=True)
#: a component's options schema is built when it first validates: a run uses a few of the registered
#: components, and building them all at registration cost 0.1 s of every command that loads the plugins
DEFERRED = pydantic.ConfigDict(**STRICT, defer_build=True)
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "value_error")
#: a value of the right type that breaks a rule of its type (a bound, a length, a pattern, a validator)
_CONSTRAINTS = (*_BOUNDS, "multiple_of", "string_too_short", "string_too_long", "too_short", "too_long", "string_pattern_mismatch")
_BOUND_WORDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "greater than"),
                "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a table: where (a key path relative to the table) and what. ``generic``:
    only "expected <the whole union>", said by a member of a union whose type the value does not
    have; a more specific problem at the same path (another member's bound) replaces it."""

    path: tuple[str | int, ...]
    message: str
    generic: bool = field(default=False, compare=False)


def narrowest(found: Iterable[Problem]) -> list[Problem]:
    """Each problem once (a union reports once per member), the generic ones of a union left out
    where another member said something more specific about the same value."""
    found = list(found)
    specific = {problem.path for problem in found if not problem.generic}
    unique: list[Problem] = []
    for problem in found:
        if problem not in unique and not (problem.generic and problem.path in specific):
            unique.append(problem)
    return unique


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return tuple(typing.get_args(annotation))


def _has_type_of(member: Any, value: Any) -> bool:
    """Whether ``value`` is of ``member``'s type (its constraints aside): ``0`` is of ``Annotated[int, Field(ge=1)]``."""
    if typing.get_origin(member) is typing.Annotated:
        member = typing.get_args(member)[0]
    if typing.get_origin(member) is typing.Literal:
        return value in typing.get_args(member)
    base = typing.get_origin(member) or member
    return isinstance(base, type) and isinstance(value, base) and not (isinstance(value, bool) and base is not bool)


def _constraint(item: Any) -> str:
    """A broken constraint in words: ``must be at least 1``."""
    kind, context = item["type"], item.get("ctx", {})
    if kind in _BOUND_WORDS:
        key, words = _BOUND_WORDS[kind]
        return f"must be {words} {context[key]}"
    if kind == "value_error":
        return str(context["error"])
    return f"{item['msg'][0].lower()}{item['msg'][1:]}"


def describe_type(annotation: Any) -> str:
    """A short human name for an annotation: ``int``, ``list[int]``, ``'relu' | 'tanh'``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(value) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return describe_type(typing.get_args(annotation)[0])
    if origin is not None:
        args = ", ".join(describe_type(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _is_union(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _model_class(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model an annotation holds (``Model`` or ``Model | None``), if any."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def _element(annotation: Any) -> Any:
    """The element annotation of ``list[X]`` / ``tuple[X, ...]`` (through ``Annotated`` and ``| None``), else ``None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_union(annotation):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _tagged(annotation: Any) -> tuple[str, dict[str, type[pydantic.BaseModel]]] | None:
    """A union of pydantic models told apart by a ``Literal`` field (``Field(discriminator=...)``):
    the field's name and each tag's model."""
    discriminator = None
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            discriminator = getattr(extra, "discriminator", None) or discriminator
        annotation = typing.get_args(annotation)[0]
    if not isinstance(discriminator, str) or not _is_union(annotation):
        return None
    models: dict[str, type[pydantic.BaseModel]] = {}
    for member in typing.get_args(annotation):
        field = getattr(member, "model_fields", {}).get(discriminator)
        for tag in typing.get_args(field.annotation) if field is not None else ():
            models[str(tag)] = member
    return discriminator, models


def option_hints(function: Callable[..., Any], names: Iterable[str]) -> dict[str, Any]:
    """The evaluated annotations of ``function``'s parameters ``names`` (its options), and of nothing else.

    The context parameters and the return type are left as written: a plugin imports the types it
    names there (``LoadedData``, ``nn.Module``) under ``typing.TYPE_CHECKING``, so that registering it
    imports no torch, and those names do not exist when the plugin runs."""
    wanted = set(names)
    target = inspect.unwrap(function)
    if not inspect.isfunction(target):  # a class: its fields, as typing resolves them
        return {k: v for k, v in typing.get_type_hints(function, include_extras=True).items() if k in wanted}
    annotations = {k: v for k, v in getattr(function, "__annotations__", {}).items() if k in wanted}
    return typing.get_type_hints(types.SimpleNamespace(__annotations__=annotations), target.__globals__, include_extras=True)


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """``did you mean 'x'?`` when a close match exists, else an empty string."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else ""


#: each factory's schema by context arity, kept as long as the factory lives
_SCHEMAS: weakref.WeakKeyDictionary[Callable[..., Any], dict[int, Schema]] = weakref.WeakKeyDictionary()


class Schema:
    """A strict pydantic model and the annotations its error messages are phrased from (shared by
    every host of a process that registers the same factory: it holds nothing of the registration)."""

    def __init__(self, model: type[pydantic.BaseModel], json_mode: bool = False) -> None:
        self.model = model
        self.json_mode = json_mode
        self.annotations = {name: f.annotation for name, f in model.model_fields.items()}
        self.defaults = {
            name: f.default for name, f in model.model_fields.items() if not f.is_required()
        }

    @classmethod
    def from_signature(cls, factory: Callable[..., Any], context_arity: int, owner: str) -> Schema:
        """The keyword-only parameters of ``factory`` as options; raises TypeError naming ``owner``.

        Read once per factory: a sweep builds a plugin host for every trial, and making these
        pydantic models was about 40% of building one (a factory that cannot be weakly referenced
        is read each time)."""
        try:
            known = _SCHEMAS.get(factory)
        except TypeError:
            return cls._read(factory, context_arity, owner)
        if known is None or context_arity not in known:
            schema = cls._read(factory, context_arity, owner)
            _SCHEMAS.setdefault(factory, {})[context_arity] = schema
            return schema
        return known[context_arity]

    @classmethod
    def _read(cls, factory: Callable[..., Any], context_arity: int, owner: str) -> Schema:
        signature = inspect.signature(factory)
        try:
            hints = option_hints(factory, [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY])
        except Exception as error:  # a forward reference the plugin cannot resolve
            raise TypeError(f"{owner}: cannot resolve the type annotations: {error}") from error
        parameters = list(signature.parameters.values())
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != context_arity:
            raise TypeError(
                f"{owner}: expected {context_arity} positional parameter(s) for the context the host "
                f"passes, found {len(positional)} ({', '.join(p.name for p in positional) or 'none'}); "
                "declare options as keyword-only parameters (after a '*')"
            )
        fields: dict[str, Any] = {}
        for parameter in parameters:
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                raise TypeError(f"{owner}: *args/**kwargs cannot be validated; list each option")
            if parameter.kind is not parameter.KEYWORD_ONLY:
                continue
            if parameter.name not in hints:
                raise TypeError(f"{owner}: option {parameter.name!r} needs a type annotation")
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (hints[parameter.name], default)
        model = pydantic.create_model("Options", __config__=DEFERRED, **fields)  # type: ignore[call-overload]
        # JSON mode: TOML values are JSON values, and strict JSON validation still lets a list become
        # a tuple and a string become a Path, while refusing "5" for an int.
        return cls(model, json_mode=True)

    @property
    def names(self) -> list[str]:
        return list(self.annotations)

    def validate_model(self, values: dict[str, Any]) -> tuple[pydantic.BaseModel | None, list[Problem]]:
        """The validated model, or ``None`` and every problem found."""
        try:
            if self.json_mode:
                return self.model.model_validate_json(json.dumps(values, default=str), strict=True), []
            return self.model.model_validate(values, strict=True), []
        except pydantic.ValidationError as error:
            return None, narrowest(self.phrase(item) for item in error.errors(include_url=False))

    def validate(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """Checked values with defaults filled in, or the problems found (never both)."""
        validated, problems = self.validate_model(values)
        if validated is None:
            return {}, problems
        return {name: getattr(validated, name) for name in self.annotations}, []

    def phrase(self, item: Any) -> Problem:
        """One of pydantic's errors as a :class:`Problem` for a person: what was expected, what was got."""
        loc = tuple(item["loc"])
        key = str(loc[0]) if loc else ""
        kind = item["type"]
        element = _element(self.annotations.get(key))
        if element is not None and len(loc) > 1 and isinstance(loc[1], int):  # a problem in one element of a list
            found = self._phrase_element(element, item, loc)
            if found is not None:
                return found
        nested = _model_class(self.annotations.get(key))
        if nested is not None and len(loc) > 1:  # a problem inside a sub-table: phrase it from that table's schema
            inner = Schema(nested, self.json_mode).phrase({**item, "loc": loc[1:]})
            return replace(inner, path=loc[:1] + inner.path)
        if kind == "extra_forbidden":
            hint = suggest(key, self.names)
            if not self.names:
                return Problem(loc, "unknown key (this takes no options)")
            return Problem(loc, f"unknown key{'; ' + hint if hint else ''} (valid keys: {', '.join(self.names)})")
        if kind == "missing":
            return Problem(loc, f"missing required value (expected {describe_type(self.annotations[key])})")
        got = f"got {item.get('input')!r} ({type(item.get('input')).__name__})"
        if len(loc) > 1 and isinstance(loc[1], str) and _is_union(self.annotations.get(key)) and nested is None:
            # pydantic tags each failed member of a union in the path; report the field as a whole, with
            # the rule the value broke when it has the type of one member (batch_size = 0: at least 1)
            value = item.get("input")
            if kind in _CONSTRAINTS:
                others = [m for m in _members(self.annotations[key]) if m is not type(None) and not _has_type_of(m, value)]
                alternatives = f" (or {' | '.join(describe_type(m) for m in others)})" if others else ""
                return Problem(loc[:1], f"{_constraint(item)}{alternatives}, {got}")
            return Problem(loc[:1], f"expected {describe_type(self.annotations[key])}, {got}", generic=True)
        if kind == "value_error":
            return Problem(loc, f"{item['ctx']['error']}, {got}")
        if len(loc) == 1 and kind not in _BOUNDS:
            return Problem(loc, f"expected {describe_type(self.annotations[key])}, {got}")
        return Problem(loc, f"{item['msg'][0].lower()}{item['msg'][1:]}, {got}")


    def _phrase_element(self, element: Any, item: Any, loc: tuple[Any, ...]) -> Problem | None:
        """A problem in ``loc[:2]``, a list's element that is a sub-table (a model, or one of a tagged
        union of models: the path leaves the tag out); ``None`` for an element of another type."""
        tagged = _tagged(element)
        kind = item["type"]
        if tagged is not None:
            field, models = tagged
            if kind == "union_tag_invalid":
                tag = str(item["ctx"]["tag"])
                hint = suggest(tag, models)
                return Problem(loc[:2], f"unknown {field} {tag!r}{'; ' + hint if hint else ''} (valid: {', '.join(models)})")
            if kind == "union_tag_not_found":
                return Problem(loc[:2], f"missing {field!r} (one of: {', '.join(models)})")
            if len(loc) > 3 and str(loc[2]) in models:
                inner = Schema(models[str(loc[2])], self.json_mode).phrase({**item, "loc": loc[3:]})
                return replace(inner, path=loc[:2] + inner.path)
        nested = _model_class(element)
        if nested is not None and len(loc) > 2:
            inner = Schema(nested, self.json_mode).phrase({**item, "loc": loc[2:]})
            return replace(inner, path=loc[:2] + inner.path)
        if tagged is not None or nested is not None:
            return Problem(loc[:2], f"expected a table ({describe_type(element)}), got {item.get('input')!r}")
        return None


def to_plain(value: Any) -> Any:
    """Values as TOML-writable data: tuples become lists, paths become strings, ``None`` is dropped."""
    if isinstance(value, pydantic.BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
