"""The doctor's calls go through an embedded mitmproxy: every call to OCA is a flow.

A `DumpMaster` (no terminal log, no dumper) in reverse mode to OCA's origin listens on a
free loopback port. Its one addon, `Wire`, puts the access token on each request on the
wire only (the flow shows `mitm_patches.REDACTED`), with an `opc-request-id` and the
client headers; the probe client sends plain HTTP to that port. `--save-flows FILE` is
mitmproxy's own `save_stream_file`: open the file in mitmweb.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import requests
from mitmproxy import exceptions, http
from mitmproxy.options import Options
from mitmproxy.tools.dump import DumpMaster

from oca_addon.addons.patches import MitmPatches
from oca_addon.cli.doctor.read import Reply
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.state import CLIENT_HEADERS

TokenSource = Callable[[], Awaitable[str | None]]
TIMEOUT = (15, 180)  # connect, read (seconds)


class DoctorError(Exception):
    """The doctor could not run (no login, OCA unreachable, bad options): say why."""


class Wire:
    """The doctor's addon: the token on the wire, a request id, the client headers."""

    def __init__(self, token: TokenSource) -> None:
        self.token = token
        self.last_request_id: str | None = None

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or not flow.live:
            return
        token = await self.token()
        if not token:
            body = json.dumps({"error": {"message": "oca-proxy doctor: not logged in"}})
            flow.response = http.Response.make(
                401, body.encode(), {"content-type": "application/json"}
            )
            return
        headers = flow.request.headers
        headers["authorization"] = mitm_patches.REDACTED
        mitm_patches.set_wire_headers(flow.request, {"authorization": f"Bearer {token}"})
        self.last_request_id = headers["opc-request-id"] = uuid.uuid4().hex.upper()
        for name, value in CLIENT_HEADERS.items():
            headers[name] = value


class EmbeddedProxy:
    """async with EmbeddedProxy(origin, token) as proxy: await proxy.send(...)."""

    def __init__(
        self,
        origin: str,
        token: TokenSource,
        *,
        sets: list[str] | None = None,
        save_flows: str | None = None,
    ) -> None:
        self.origin = origin
        self.wire = Wire(token)
        self.sets = list(sets or [])
        self.save_flows = save_flows
        self.port = 0
        self._master: DumpMaster | None = None
        self._task: asyncio.Task[None] | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # loopback: never through the environment's proxy

    async def __aenter__(self) -> EmbeddedProxy:
        for name in ("mitmproxy", "mitmproxy.proxy.server"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        opts = Options()
        master = DumpMaster(opts, with_termlog=False, with_dumper=False)
        # The proxy's first addon: the installed mitmproxy checked, the patches applied.
        master.addons.add(MitmPatches(), self.wire)
        try:
            opts.update(
                mode=[f"reverse:{self.origin}@127.0.0.1:0"],
                connection_strategy="lazy",
            )
            if self.save_flows:
                opts.update(save_stream_file=self.save_flows)
            if self.sets:
                opts.set(*self.sets)
        except exceptions.OptionsError as e:
            raise DoctorError(f"mitmproxy option problem: {e}") from None
        self._master = master
        self._task = asyncio.get_running_loop().create_task(self._run(master))
        proxyserver: Any = master.addons.get("proxyserver")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._task.done():
                raise DoctorError("the embedded mitmproxy did not start")
            ports = [a[1] for a in proxyserver.listen_addrs() if a[1]]
            if ports:
                self.port = ports[0]
                return self
            await asyncio.sleep(0.01)
        await self.__aexit__()
        raise DoctorError("the embedded mitmproxy did not start listening")

    @staticmethod
    async def _run(master: DumpMaster) -> None:
        with contextlib.suppress(SystemExit):  # mitmproxy's errorcheck exits on start-up errors
            await master.run()

    async def __aexit__(self, *exc: object) -> None:
        # Our keep-alive connections first, so that mitmproxy's handlers end on their own
        # (not cancelled at the loop's end), then the master.
        self._session.close()
        master = self._master
        if master is not None:
            proxyserver: Any = master.addons.get("proxyserver")
            deadline = time.monotonic() + 3
            while proxyserver.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            master.shutdown()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)

    async def send(self, method: str, path: str, body: dict[str, Any] | None) -> Reply:
        """One call through the proxy: `path` is OCA's full path (prefix included)."""
        url = f"http://127.0.0.1:{self.port}{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": "application/json, text/event-stream"}
        self.wire.last_request_id = None
        if data is not None:
            headers["content-type"] = "application/json"
        started = time.perf_counter()

        def call() -> requests.Response:
            return self._session.request(method, url, data=data, headers=headers, timeout=TIMEOUT)

        try:
            resp = await asyncio.to_thread(call)
            content = resp.content
        except requests.RequestException as e:
            raise DoctorError(
                f"the embedded mitmproxy did not answer: {type(e).__name__}"
            ) from None
        return Reply(
            status=resp.status_code,
            content_type=resp.headers.get("content-type", ""),
            body=content,
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=self.wire.last_request_id,
        )
