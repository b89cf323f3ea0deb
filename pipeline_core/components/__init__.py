"""Components: what plugins register and the host holds.

kinds.py     the component kinds, each declared once: hook, context, return, the typed ``register`` its hook gets
options.py   a component's options, read from its typed signature; strict validation; messages
registry.py  components by kind and name, each checked as it arrives
host.py      Host: a plugin manager together with the registry its plugins filled
"""
