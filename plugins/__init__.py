"""The built-in plugins, installed as ``pipeline_core_plugins``. Each module registers its components
through the same hooks a third-party plugin uses and imports only the public API (``pipeline_core``, and
``pipeline_core.engine`` for the stages).
The host finds them by name (:mod:`pipeline_core.discovery.builtins`) and never imports this package itself."""
