"""Running the simulator: the CLI entry point and an in-process background server for tests."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import sys
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from oca_addon.sim.app import make_app
from oca_addon.sim.config import CHOICES, GUESSES, GUESSES_ENV, SimConfig
from oca_addon.sim.state import SimState


async def serve(
    config: SimConfig,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    app: tornado.web.Application | None = None,
) -> None:
    """Listen until `stop` is set (forever without one). on_ready gets the real port."""
    app = app or make_app(config)
    sockets = tornado.netutil.bind_sockets(config.port, config.host)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    if on_ready:
        on_ready(port)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        server.stop()
        await server.close_all_connections()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oca-sim", description="Simulator of the OCA API and its IDCS login server."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    p.add_argument("--client-id", action="append", default=[], help="extra accepted client id")
    p.add_argument("--allow-any-redirect-port", action="store_true")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime (s)")
    p.add_argument("--refresh-delay", type=float, default=0.0, help="sleep before refresh (s)")
    p.add_argument(
        "--fail-refresh",
        action="store_true",
        help="refreshes fail as a lost login (see --lost-login)",
    )
    p.add_argument("--no-rotate-refresh-tokens", action="store_true")
    p.add_argument("--deny-login", action="store_true")
    p.add_argument("--empty-final-output", action="store_true")
    p.add_argument("--no-enforce-max-tokens", action="store_true")
    p.add_argument("--recent-requests", type=int, default=50)
    p.add_argument(
        "--guesses",
        help=f'"all", "none" or a comma list of {", ".join(GUESSES)} (default: ${GUESSES_ENV} or all)',
    )
    p.add_argument(
        "--model-info",
        metavar="FILE",
        help='serve this /v1/model/info payload verbatim ({"data": [...]} or a bare array)',
    )
    p.add_argument(
        "--refusals",
        metavar="JSON_OR_FILE",
        help='what models really refuse: {"oca/x": {"params": [...], "efforts": [...], '
        '"max_output_tokens": N}} (JSON, or a file holding it)',
    )
    p.add_argument(
        "--from-report",
        metavar="FILE",
        help="behave as an `oca-proxy doctor --report` measured: its model list, refusals, "
        "guesses, reasoning field, token lifetime (wins over the other flags)",
    )
    for knob, choices in CHOICES.items():
        p.add_argument("--" + knob.replace("_", "-"), choices=choices, default=choices[0])
    p.add_argument("--log-level", default="WARNING")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    config = SimConfig(
        host=args.host,
        port=args.port,
        client_ids=list(args.client_id),
        allow_any_redirect_port=args.allow_any_redirect_port,
        token_ttl=args.token_ttl,
        refresh_delay=args.refresh_delay,
        fail_refresh=args.fail_refresh,
        rotate_refresh_tokens=not args.no_rotate_refresh_tokens,
        deny_login=args.deny_login,
        empty_final_output=args.empty_final_output,
        enforce_max_tokens=not args.no_enforce_max_tokens,
        recent_requests=args.recent_requests,
        reasoning_field=args.reasoning_field,
        error_shape=args.error_shape,
        lost_login=args.lost_login,
        model_info=_load_json(args.model_info) if args.model_info else None,
        refusals=_json_or_file(args.refusals) if args.refusals else {},
    )
    if args.guesses is not None:
        config.set_guesses(args.guesses)
    if args.from_report:
        apply_report(config, _load_json(args.from_report))
    return config


def apply_report(config: SimConfig, report: Any) -> None:
    """Make the simulator behave as a doctor's report measured (ValueError: not a report)."""
    from oca_addon.cli.doctor.report import sim_settings

    if not isinstance(report, dict) or "measured" not in report:
        raise ValueError('not an `oca-proxy doctor` report (no "measured")')
    settings = sim_settings(report)
    on, off = set(settings.pop("guesses_on")), set(settings.pop("guesses_off"))
    config.update(settings)
    for name in on | off:
        setattr(config, name, name in on)


def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_or_file(value: str) -> Any:
    """JSON given inline (starts with `{`) or the path of a file holding it."""
    return json.loads(value) if value.lstrip().startswith("{") else _load_json(value)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as e:
        parser.error(str(e))

    def ready(port: int) -> None:
        print(f"OCA simulator listening on http://{config.host}:{port}", flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config, ready))
    except OSError as e:  # the port is taken (or not ours to take): one line, no traceback
        if e.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        reason = "in use" if e.errno == errno.EADDRINUSE else e.strerror
        print(
            f"oca-sim: cannot listen on {config.host}:{config.port}: {reason} (another "
            "simulator or `oca-proxy demo`?); choose another port with --port",
            file=sys.stderr,
        )
        return 1
    return 0


class SimServer:
    """The simulator on a free port in a background thread (own event loop).

    with SimServer(SimConfig(port=0, allow_any_redirect_port=True)) as sim:
        httpx.get(sim.api_base + "/v1/model/info", headers=...)
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig(port=0)
        self.app = make_app(self.config)
        self.state: SimState = self.app.settings["sim_state"]  # read-mostly from tests
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def api_base(self) -> str:
        from oca_addon.sim.api import PREFIX

        return self.url + PREFIX

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._run, name="oca-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"simulator did not start: {self._error}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._stop = asyncio.Event()

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        try:
            loop.run_until_complete(serve(self.config, ready, self._stop, self.app))
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Call a /__sim/ endpoint (POST when payload is given)."""
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            f"{self.url}/__sim/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def requests(self, path: str = "") -> list[dict[str, Any]]:
        """Recorded requests whose path ends with `path`, oldest first (see /__sim/requests)."""
        return [r for r in list(self.state.requests) if r["path"].endswith(path)]

    def last_request(self, path: str = "") -> dict[str, Any]:
        """The newest recorded request whose path ends with `path` (KeyError: none)."""
        found = self.requests(path)
        if not found:
            raise KeyError(f"no recorded request for {path!r}")
        return found[-1]

    def mint(self, **payload: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("mint", payload)
        return result

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
