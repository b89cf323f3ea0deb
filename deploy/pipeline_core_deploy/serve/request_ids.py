"""Request ids: the ``X-Request-ID`` a client (or a proxy in front of the server) sends is taken, and
one is made for a request without it; either way it is returned in the response's ``X-Request-ID``
header (gRPC: the ``x-request-id`` trailing metadata), written in the access log line, and put in
every error body (``"request_id"``), so one id follows a request from the client's log to the server's.

A client's id is taken as sent when it is 1 to 128 visible ASCII characters; anything else (a space,
a control character, a very long value) is replaced by a made one, so a log line can never be split
or padded by a header. Made ids are this process's random prefix and a counter: unique, and cheaper
than a UUID on the hot path.
"""

from __future__ import annotations

import itertools
import secrets

HEADER = "x-request-id"
MAX_LENGTH = 128
_PREFIX = secrets.token_hex(6)
_counter = itertools.count(1)


def made() -> str:
    """A new id, unique to this process and unlike any other process's."""
    return f"{_PREFIX}-{next(_counter):x}"


def taken(value: str | None) -> str:
    """The client's id when it is usable as it is, else a made one."""
    if value and len(value) <= MAX_LENGTH and value.isascii() and value.isprintable() and " " not in value:
        return value
    return made()
