"""Components: what plugins register and the host holds.

options.py   a component's options, read from its typed signature; strict validation; messages
registry.py  components by kind and name; the ``register`` callback that checks each one as it arrives
host.py      Host: a plugin manager together with the registry its plugins filled
"""
