"""What the addon tests give the addons in place of the outside world: a login that never
calls IDCS, a ProxyState whose model list is given (never fetched from OCA), and flows as
mitmproxy hands them over in reverse mode (`tflow` with an API request)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow

from oca_addon.addons.gateway import Gateway
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.settings import SettingsFile
from oca_addon.mitm.state import ProxyState, Upstream
from oca_addon.sim.models import model_info_payload

PORT = 8669  # where the proxy listens
OCA = "http://127.0.0.1:9"  # the reverse-mode target
PREFIX = "/20250206/app/litellm"
MODE = f"reverse:{OCA}@{PORT}"
TOKEN = "at-secret-token-1"
CATALOG = Catalog.from_model_info(model_info_payload())  # the simulator's model list


class FakeTokens:
    """The token manager's face to the Gateway: an access token (or none: not logged in)."""

    def __init__(self, token: str | None = TOKEN) -> None:
        self.token = token
        self.problem = None if token else "no refresh token file"
        self.invalidated: list[str] = []
        self.refreshes = 0

    async def access_token(self) -> str | None:
        return self.token

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)

    def refresh_now(self) -> None:
        self.refreshes += 1


class State(ProxyState):
    """A ProxyState with a settings file of the test's own, a fake login, OCA at OCA, and
    the simulator's model list served without a call."""

    def __init__(
        self,
        tmp_path: Path,
        settings: dict[str, Any] | None = None,
        token: str | None = TOKEN,
        catalog: Catalog | None = CATALOG,
    ) -> None:
        super().__init__()
        path = tmp_path / "oca-proxy.config.json"
        path.write_text(json.dumps(settings or {}))
        self.settings_file = SettingsFile(path)
        self.tokens = FakeTokens(token)  # type: ignore[assignment]
        self.upstream = Upstream(OCA + PREFIX, OCA, "client-id", "internal")
        self.given_catalog = catalog

    async def catalog(self, token: str | None = None) -> Catalog | None:
        return self.given_catalog


def api_flow(
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    headers: list[tuple[str, str]] | None = None,
    host: str = f"127.0.0.1:{PORT}",
    peer: str = "127.0.0.1",
) -> http.HTTPFlow:
    """A client's request as it reaches the addons (reverse mode, Host kept)."""
    f = tflow.tflow()
    f.client_conn.peername = (peer, 50000)
    req = f.request
    req.scheme, req.host, req.port = "http", "127.0.0.1", 9
    req.method, req.path = method, path
    fields = [("host", host), ("content-type", "application/json"), *(headers or [])]
    req.headers = http.Headers([(k.encode(), v.encode()) for k, v in fields])
    req.raw_content = b"" if body is None else json.dumps(body).encode()
    return f


def oca_answer(status: int, body: bytes, content_type: str, **headers: str) -> http.Response:
    return http.Response.make(status, body, {"content-type": content_type, **headers})


def chat_sse(text: str = "Hello", model: str = "oca/gpt-4.1") -> bytes:
    """OCA's streamed chat answer: the text, then the finish and usage, then [DONE]."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        },
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + (
        b"data: [DONE]\n\n"
    )


async def forwarded(gw: Gateway, path: str, body: Any, **kw: Any) -> http.HTTPFlow:
    """The client's request through the Gateway's request hook (and the work it leaves for
    once the request is sent): an API call is then in flight, as in the chain."""
    f = api_flow(path, body, **kw)
    await gw.request(f)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return f


async def answered(gw: Gateway, f: http.HTTPFlow, resp: http.Response) -> http.HTTPFlow:
    """OCA's answer through the Gateway's responseheaders and response hooks."""
    f.response = resp
    gw.responseheaders(f)
    await gw.response(f)
    return f
