"""The plugin host: the plugin manager built from the built-ins, entry points and the modules a
pipeline file names (:func:`pipeline_core.host.build.build_host`).

build.py       build_host(): find, import and register every plugin; a broken one is left out with its error
builtins.py    the built-in plugins by name (the core never imports them itself), and their aliases
hook_names.py  hook implementations nothing would call: a misspelled hook, a hook's name without @hookimpl
"""

from pipeline_core._moved import old_module_names

#: until the next release, the names of the old module ``pipeline_core.host`` (now ``pipeline_core.components.host``), with a DeprecationWarning
__getattr__ = old_module_names(__name__)
