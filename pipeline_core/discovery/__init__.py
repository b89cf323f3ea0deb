"""Plugin discovery: finds, imports and registers every plugin (the built-ins, entry points and the
modules a pipeline file names), and builds the :class:`~pipeline_core.components.host.Host` a run
holds (:func:`pipeline_core.discovery.build.build_host`).

build.py       build_host(): find, import and register every plugin; a broken one is left out with its error
builtins.py    the built-in plugins by name (the core never imports them itself), and their aliases
hook_names.py  hook implementations nothing would call: a misspelled hook, a hook's name without @hookimpl
"""
