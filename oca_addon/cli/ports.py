"""Local ports: whether a server could listen on one, and the mitmproxy options that name
them. Checked before anything starts, so a busy port is one clear line, not a traceback
after a success banner (or, for the demo, another demo's simulator answering in silence)."""

from __future__ import annotations

import errno
import os
import socket


def bind_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why a server could not listen on host:port (None: it could). Binds as servers do
    (SO_REUSEADDR on POSIX, so old connections in TIME_WAIT are no obstacle)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError):
        return None  # the server itself reports a name it cannot resolve
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        if os.name == "posix":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return "in use"
            return e.strerror or type(e).__name__
    return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    return bind_problem(port, host) is None


def mitm_option(args: list[str], name: str) -> str | None:
    """The value mitmproxy arguments give an option (`--set name=V`, `--set=name=V`, or its
    flag `--web-port V` / `--web-port=V`); the last one wins; None if none does."""
    flag = "--" + name.replace("_", "-")
    value: str | None = None
    for i, arg in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else None
        setting: str | None = None
        if arg == "--set" and nxt is not None:
            setting = nxt
        elif arg.startswith("--set="):
            setting = arg[len("--set=") :]
        elif arg == flag and nxt is not None:
            value = nxt
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
        if setting is not None:
            key, eq, v = setting.partition("=")
            if eq and key == name:
                value = v
    return value


def web_address(args: list[str]) -> tuple[str, int]:
    """Where mitmweb's own server listens with these arguments (its defaults otherwise)."""
    port = mitm_option(args, "web_port")
    return mitm_option(args, "web_host") or "127.0.0.1", int(
        port
    ) if port and port.isdigit() else 8081
