"""Issue 14 (Hardening II) in process: the mitmproxy code under the 413 close and
head-limit patches, and the filter that silences asyncio's cancelled-callback traceback.
Through a real mitmdump: tests/e2e/test_hardening.py."""

from __future__ import annotations

from typing import Any


def test_patched_mitmproxy_code_is_what_the_patches_were_written_for() -> None:
    """Fails loudly when mitmproxy changes under the 413 close and head-limit patches
    (checked against mitmproxy 12.3.1): then re-check whether they are still needed."""
    import inspect

    from mitmproxy.proxy import server
    from mitmproxy.proxy.layers.http import _http1

    from oca_addon.mitm import patches as mitm_patches
    from oca_addon.mitm.patches import closeconn, headlimits, http2

    mitm_patches.apply()
    assert _http1.Http1Server.read_headers is http2._read_headers
    assert http2._inner is headlimits._read_headers
    assert server.ConnectionHandler.close_connection is closeconn._close_connection
    read_headers = inspect.getsource(headlimits._original_read_headers)
    assert "maybe_extract_lines" in read_headers and "header size DoS" in read_headers
    handle = inspect.getsource(server.ConnectionHandler.handle_connection)
    assert "await self.server_event(events.DataReceived(connection, data))" in handle
    assert "writer.close()" in handle


def test_only_asyncios_cancelled_callback_traceback_is_silenced() -> None:
    """Issue 23.13, in process: the filter drops a CancelledError raised in asyncio's
    StreamReaderProtocol callback (gh-113538) and nothing else."""
    import asyncio
    import logging

    from oca_addon.addons.hardening import CancelledCallbackNoise, quiet_cancelled_callbacks

    def raised_in(filename: str, exc: BaseException) -> BaseException:
        scope: dict[str, Any] = {"exc": exc}
        exec(compile("def callback():\n    raise exc\n", filename, "exec"), scope)
        try:
            scope["callback"]()
        except BaseException as e:
            return e
        raise AssertionError("not raised")

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "asyncio", logging.ERROR, "x", 1, "Exception in callback", None,
            (type(exc), exc, exc.__traceback__),
        )  # fmt: skip

    f = CancelledCallbackNoise()
    streams = "/usr/lib/python3.12/asyncio/streams.py"
    assert f.filter(record(raised_in(streams, asyncio.CancelledError()))) is False
    assert f.filter(record(raised_in("/app/mine.py", asyncio.CancelledError()))) is True
    assert f.filter(record(raised_in(streams, RuntimeError("real")))) is True
    assert f.filter(logging.LogRecord("asyncio", 40, "x", 1, "no exc", None, None)) is True
    assert quiet_cancelled_callbacks((3, 12, 2)) is False  # fixed there: nothing installed
    assert quiet_cancelled_callbacks((3, 12, 1)) is True
    assert quiet_cancelled_callbacks((3, 12, 1)) is True
    for name in ("asyncio", "mitmproxy.master"):
        logger = logging.getLogger(name)
        ours = [x for x in logger.filters if isinstance(x, CancelledCallbackNoise)]
        assert len(ours) == 1  # once
        logger.removeFilter(ours[0])
