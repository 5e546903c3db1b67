"""A client connection mitmproxy closes is closed for real (the 413 reaches a client still
sending its body).

mitmproxy 12.3.1, proxy/server.py: CloseConnection cancels the connection's reader task,
which closes the socket on its way out. But when the cancel lands while that task waits
for the server_event lock (a hook, e.g. the 413's error hook, holds it), CancelledError
leaves handle_connection before its writer.close(): the socket stays open, the client
keeps writing its body into full buffers and never sees the 413 (the openai SDK waits
for its 600 s timeout). So the socket is closed right here too (what was written is
still sent first: asyncio flushes its buffer before closing).

Patch (checked against mitmproxy 12.3.1): `server.ConnectionHandler.close_connection`,
wrapped by `_close_connection`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import server

BEHAVIOUR = "a 413 reaching a client still sending its body"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _close_connection (closes the client's socket after a 413)
    "proxy.server.ConnectionHandler.close_connection": (
        "c0d10cc05dd65b80",
        ("self", "connection", "half_close"),
    ),
}
_applied = False


def _close_connection(self: Any, connection: Any, half_close: bool = False) -> None:
    _original_close_connection(self, connection, half_close)
    if connection.state is ConnectionState.CLOSED:
        io = self.transports.get(connection)
        writer = getattr(io, "writer", None)
        if isinstance(writer, asyncio.StreamWriter) and not writer.is_closing():
            writer.close()


_original_close_connection = server.ConnectionHandler.close_connection


def apply() -> None:
    global _applied
    if not _applied:
        server.ConnectionHandler.close_connection = _close_connection  # type: ignore[method-assign]
        _applied = True
