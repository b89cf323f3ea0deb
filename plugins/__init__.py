"""The built-in plugins, installed as ``pipeline_core_plugins``. Each module registers its components
through the same hooks a third-party plugin uses and imports only the public API (``pipeline_core``).
The host finds them by name (:mod:`pipeline_core.builtins`) and never imports this package itself."""
