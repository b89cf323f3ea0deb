"""The component kinds, each declared once (pipeline_core.components.kinds): the registration hooks,
the registry and the hooks' ``register`` callables all come from the declarations; each kind's
``register`` is typed with exactly what that kind takes; a bad registration of each kind is refused
with an error that names the plugin, the kind and what is wrong; and third-party plugins that call
``register(name, component, ...)`` as before keep working."""

from __future__ import annotations

import inspect
import textwrap
import typing

import pytest

from pipeline_core import PluginError, Register, hookimpl, hookspecs
from pipeline_core.components import kinds
from pipeline_core.components.registry import Registry
from pipeline_core.pipeline.load import load_pipeline
from pipeline_core.testing import build_host

from helpers import IRIS_FAST, hookspec_names


def _component(kind: kinds.Kind, positional: int | None = None):
    """A component of ``kind`` with ``positional`` context parameters (the kind's arity by default) and no options."""
    parameters = ", ".join(f"context{i}" for i in range(kind.arity if positional is None else positional))
    return eval(f"lambda {parameters}: None")  # a signature made to measure


def _register(kind: kinds.Kind, registry: Registry | None = None) -> Register:
    return kind.register(registry or Registry(), kind.name, "widgets.py")


def test_every_kind_has_its_hook_and_its_own_register():
    hooks = [kind.hook for kind in kinds.ALL]
    assert [name for name in hookspec_names() if name.startswith("register_") and name != "register_commands"] == sorted(hooks)
    assert len({kind.register for kind in kinds.ALL}) == len(kinds.ALL)
    assert [kind.name for kind in kinds.ALL] == ["dataset", "model", "optimizer", "loss", "metric", "scheduler", "exporter", "stage", "plot", "tracker"]
    assert kinds.of("tracker").call == "settings(**options) -> its settings"
    assert Registry().components.keys() == {kind.name for kind in kinds.ALL}
    assert kinds.of("plot").call == "plot(run: RunContext) -> None"
    assert kinds.of("dataset").call == "loader(context: DatasetContext, **options) -> LoadedData"


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.name)
def test_each_kinds_register_is_typed_with_what_the_kind_takes(kind):
    """The keywords of the kind's ``register`` are exactly the kind's: a type checker refuses a keyword
    of another kind (``**misplaced: Never``) before the host does."""
    parameters = inspect.signature(kind.register.__call__).parameters
    keyword_only = [name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == ["description", *([] if kind.name == "plot" else ["check"]), *kind.keywords]
    assert list(parameters)[:3] == ["self", "name", "component"]  # register(name, component) as before, by position or keyword
    hints = typing.get_type_hints(kind.register.__call__)
    assert hints["misplaced"] is typing.Never and hints["return"] is type(None)
    assert {"dataset": ("spec",), "stage": ("needs", "provides"), "loss": ("default_for",), "optimizer": ("default",)}.get(kind.name, ()) \
        == kind.keywords


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.name)
def test_a_component_of_each_kind_registers_through_its_typed_register(kind):
    registry = Registry()
    _register(kind, registry)("widget", _component(kind), description="A widget.")
    component = registry.get(kind.name, "widget")
    assert (component.kind, component.plugin, component.description) == (kind.name, "widgets.py", "A widget.")
    assert repr(_register(kind)) == f"<{kind.register.__name__} of plugin 'widgets.py'>"


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.name)
def test_a_bad_registration_of_each_kind_gives_its_clear_error(kind):
    register = _register(kind)
    with pytest.raises(PluginError, match=rf"^plugin 'widgets.py' registered a {kind.name} named 'Bad Name': names are lower-case"):
        register("Bad Name", _component(kind))
    with pytest.raises(PluginError, match=rf"^plugin 'widgets.py' registered {kind.name} 'w' with a non-callable 42$"):
        register("w", 42)
    with pytest.raises(PluginError, match=rf"^{kind.name} 'w' of plugin 'widgets.py': expected {kind.arity} positional parameter\(s\)"):
        register("w", _component(kind, kind.arity + 1))
    with pytest.raises(TypeError, match=rf"^{kind.register.__name__}\.__call__\(\) got an unexpected keyword argument 'nedds'$"):
        register("w", _component(kind), nedds=("data",))  # no kind takes it: what Python says, naming the kind's class


@pytest.mark.parametrize("kind", [kind for kind in kinds.ALL if kind.name != "dataset"], ids=lambda kind: kind.name)
def test_a_spec_is_refused_for_every_kind_but_a_dataset(kind):
    with pytest.raises(PluginError, match=rf"^plugin 'widgets.py' gave {kind.name} 'w' spec=.*: only a dataset takes a spec, a callable"):
        _register(kind)("w", _component(kind), spec=lambda context: None)


@pytest.mark.parametrize("kind", [kind for kind in kinds.ALL if kind.name != "stage"], ids=lambda kind: kind.name)
def test_needs_and_provides_are_refused_for_every_kind_but_a_stage(kind):
    with pytest.raises(PluginError, match=rf"^plugin 'widgets.py' gave {kind.name} 'w' needs=\('data',\): only a stage takes needs$"):
        _register(kind)("w", _component(kind), needs=("data",))
    with pytest.raises(PluginError, match=rf"^plugin 'widgets.py' gave {kind.name} 'w' provides=\('x',\): only a stage takes provides$"):
        _register(kind)("w", _component(kind), provides=("x",))


def test_the_kind_specific_keywords_are_checked_where_they_belong():
    with pytest.raises(PluginError, match="gave dataset 'd' spec=3: only a dataset takes a spec, a callable"):
        _register(kinds.of("dataset"))("d", _component(kinds.of("dataset")), spec=3)
    with pytest.raises(PluginError, match=r"gave stage 's' needs='data': expected a tuple of lower-case names"):
        _register(kinds.of("stage"))("s", _component(kinds.of("stage")), needs="data")

    def takes_workers(context: object, *, workers: int = 2) -> None: ...

    with pytest.raises(PluginError, match=r"declares option\(s\) 'workers', which the host reads from the same table"):
        _register(kinds.of("dataset"))("d", takes_workers)


def test_a_plot_has_no_table_so_it_takes_no_check_and_no_required_option():
    plot = kinds.of("plot")
    with pytest.raises(TypeError, match=r"^RegisterPlots\.__call__\(\) got an unexpected keyword argument 'check'$"):
        _register(plot)("p", _component(plot), check=lambda: None)

    def needs_an_option(run: object, *, bins: int) -> None: ...

    with pytest.raises(PluginError, match=r"^plot 'p' of plugin 'widgets.py' has required option\(s\) 'bins': no table configures a plot"):
        _register(plot)("p", needs_an_option)

    def with_a_default(run: object, *, bins: int = 30) -> None: ...

    _register(plot)("p", with_a_default)


def test_each_hook_receives_its_kinds_register(tmp_path):
    seen: dict[str, str] = {}

    class Recorder:
        for kind in kinds.ALL:
            exec(textwrap.dedent(f"""
                @hookimpl
                def {kind.hook}(self, register):
                    seen[{kind.hook!r}] = type(register).__name__
            """), {"hookimpl": hookimpl, "seen": seen}, locals())
        del kind

    build_host(given=[Recorder()])
    assert seen == {kind.hook: kind.register.__name__ for kind in kinds.ALL}
    assert all(issubclass(kind.register, hookspecs.Register) for kind in kinds.ALL)


def test_a_plugin_written_for_the_one_register_still_registers_every_kind(write_pipeline, tmp_path):
    """``register(name, component, description=..., check=..., spec=..., needs=..., provides=...)`` as
    plugins called it before the kinds had their own ``register``, annotated with ``Register``."""
    (tmp_path / "old_style.py").write_text(textwrap.dedent('''
        from pipeline_core import Register, hookimpl

        def loader(context, *, rows: int = 3):
            """Rows."""

        def check_rows(*, rows: int) -> None:
            if rows < 1:
                raise ValueError("rows must be at least 1")

        @hookimpl
        def register_datasets(register: Register) -> None:
            register("old_rows", loader, description="a few rows", check=check_rows, spec=lambda context, *, rows: None)

        @hookimpl
        def register_stages(register: Register) -> None:
            register(name="old_stage", component=lambda run: None, needs=("data",), provides=("old",))

        @hookimpl
        def register_plots(register: Register) -> None:
            register("old_plot", lambda run: None)
    '''))
    _, host = load_pipeline(write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["old_style.py"]')))
    found = {(c.kind, c.name) for c in host.registry.by_plugin("old_style.py")}
    assert found == {("dataset", "old_rows"), ("stage", "old_stage"), ("plot", "old_plot")}
    assert host.registry.get("dataset", "old_rows").spec is not None and host.registry.get("stage", "old_stage").needs == ("data",)


def test_a_bad_plot_registration_breaks_its_plugin_with_the_clear_error(write_pipeline, tmp_path):
    (tmp_path / "bad_plot.py").write_text(
        "from pipeline_core import hookimpl\n\n@hookimpl\ndef register_plots(register):\n    register('p', lambda run, extra: None)\n"
    )
    with pytest.raises(PluginError, match=r"plot 'p' of plugin 'bad_plot.py': expected 1 positional parameter\(s\)"):
        load_pipeline(write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["bad_plot.py"]')))
