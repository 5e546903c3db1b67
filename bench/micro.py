"""In-process cost of translating a stream: recorded chat chunks (the simulator's exact
bytes) fed one by one through `oca_addon.core.streams.StreamDriver` with each translator, against the
`PassthroughTap` that native answers take. No network, no mitmproxy: just the addon's
per-chunk work, in microseconds of CPU time per chunk."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

from oca_addon.core import exchange as gateway
from oca_addon.core import streams as answer_streams
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.sim import llm, streams
from oca_addon.sim.models import MODELS, model_info_payload
from oca_addon.translate.responses import ResponseHistory

from .client import MODEL, make_body

CAPTURE_LIMIT = 2 * 1024 * 1024  # the addon's default oca_capture_limit


def recorded_chunks(n: int) -> list[bytes]:
    """The SSE frames the simulator sends for a chat answer of n text deltas (+ finish,
    usage and [DONE]), exactly as it writes them to the socket one by one."""
    body = json.loads(make_body("chat", f"Benchmark SIM:chunks={n}"))
    plan = llm.build_plan(
        MODELS[MODEL], llm.from_chat(body), llm.parse_directives(f"SIM:chunks={n}")
    )
    return streams.chat_frames(plan, body)


def _exchange(endpoint: Endpoint, kind: str) -> gateway.Exchange:
    catalog = Catalog.from_model_info(model_info_payload())
    body = json.loads(make_body(kind, "Benchmark"))
    return gateway.prepare(endpoint, body, Settings(), catalog, ResponseHistory())


class _NullTranslator:
    """Parses like a translator would be fed, emits nothing: the driver's own cost."""

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""

    def fail(self, status: int, message: str) -> bytes:
        return b""


def _factories() -> dict[str, Callable[[], Callable[[bytes], Any]]]:
    anthropic = _exchange(Endpoint.MESSAGES, "anthropic")
    responses = _exchange(Endpoint.RESPONSES, "responses")
    assert anthropic.make_translator and responses.make_translator
    make_a, make_r = anthropic.make_translator, responses.make_translator
    return {
        "passthrough": lambda: answer_streams.PassthroughTap(CAPTURE_LIMIT, lambda m: b""),
        "driver_parse_only": lambda: answer_streams.StreamDriver(_NullTranslator(), CAPTURE_LIMIT),
        "anthropic": lambda: answer_streams.StreamDriver(make_a(), CAPTURE_LIMIT),
        "responses": lambda: answer_streams.StreamDriver(make_r(), CAPTURE_LIMIT),
    }


def _time_once(
    make: Callable[[], Callable[[bytes], Any]], frames: list[bytes]
) -> tuple[float, int]:
    stream = make()
    out = 0
    gc_was = gc.isenabled()
    gc.disable()
    try:
        # CPU time of this thread: what other processes do to the machine is not counted.
        t0 = time.thread_time()
        for frame in frames:
            r = stream(frame)
            out += len(r) if isinstance(r, bytes) else sum(map(len, r))
        r = stream(b"")
        t1 = time.thread_time()
    finally:
        if gc_was:
            gc.enable()
    out += len(r) if isinstance(r, bytes) else sum(map(len, r))
    return t1 - t0, out


def run(chunks: int = 20000, repeats: int = 7) -> dict[str, Any]:
    frames = recorded_chunks(chunks)
    factories = _factories()
    n = len(frames)
    times: dict[str, list[float]] = {name: [] for name in factories}
    out_bytes: dict[str, int] = {}
    for _ in range(repeats):  # interleaved repeats: drift hits all alike
        for name, make in factories.items():
            t, out = _time_once(make, frames)
            times[name].append(t)
            out_bytes[name] = out
    best = {name: min(ts) for name, ts in times.items()}
    med = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    us = 1e6 / n
    result: dict[str, Any] = {
        "chunks": n,
        "repeats": repeats,
        "in_bytes": sum(map(len, frames)),
        "per_chunk_us": {name: best[name] * us for name in factories},
        "per_chunk_us_median": {name: med[name] * us for name in factories},
        "out_bytes": out_bytes,
    }
    result["over_passthrough_us"] = {
        name: (best[name] - best["passthrough"]) * us
        for name in ("anthropic", "responses", "driver_parse_only")
    }
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
