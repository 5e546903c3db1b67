"""mitm_patches replaces or reads private mitmproxy code: this fails, saying what changed,
when a mitmproxy upgrade changes any of it, so that each patch is re-checked by a person."""

from __future__ import annotations

import hashlib
import inspect

import pytest
from mitmproxy import version
from mitmproxy.proxy.layers.http import _http1, _http2

from oca_addon.mitm import patches as mitm_patches


def _fingerprint(obj: object) -> tuple[str, tuple[str, ...]]:
    digest = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]
    params = () if isinstance(obj, type) else tuple(inspect.signature(obj).parameters)  # type: ignore[arg-type]
    return digest, params


@pytest.mark.parametrize("name", sorted(mitm_patches.CHECKED))
def test_patched_mitmproxy_code_is_what_was_checked(name: str) -> None:
    recorded = mitm_patches.CHECKED[name]
    found = _fingerprint(mitm_patches.ORIGINALS[name])
    assert found == recorded, (
        f"mitmproxy.{name} is not the code oca_addon/mitm/patches.py was checked against "
        f"(mitmproxy {mitm_patches.CHECKED_AGAINST}; installed: {version.VERSION}). "
        f"Source hash and parameters now {found}, recorded {recorded}. Re-read mitmproxy's "
        "new code against the patch, fix the patch if needed, then record the new values "
        "in mitm_patches.CHECKED and CHECKED_AGAINST."
    )


def test_originals_are_mitmproxys_own() -> None:
    """The fingerprints above are of mitmproxy's code, not of our replacements."""
    for name, obj in mitm_patches.ORIGINALS.items():
        assert getattr(obj, "__module__", "").startswith("mitmproxy."), name


def test_apply_replaces_exactly_the_checked_methods() -> None:
    mitm_patches.apply()
    originals = mitm_patches.ORIGINALS
    assert _http1.make_error_response is mitm_patches.error_response_bytes
    assert _http1.Http1Server.send is mitm_patches._send
    for name, now in (
        ("proxy.layers.http._http1.Http1Client.send", _http1.Http1Client.send),
        ("proxy.layers.http._http2.Http2Client._handle_event2", _http2.Http2Client._handle_event2),
    ):
        assert now is not originals[name]
        assert now.__module__ == mitm_patches.__name__
    mitm_patches.apply()  # once only: a second call wraps nothing twice
    assert _http1.Http1Server.send is mitm_patches._send
    # chunked request bodies: the client side only; OCA's answers are read as mitmproxy does
    assert _http1.Http1Server.read_body is mitm_patches._read_body
    assert (
        _http1.Http1Client.read_body
        is originals["proxy.layers.http._http1.Http1Connection.read_body"]
    )


def test_checked_version_is_named_on_each_patch() -> None:
    source = inspect.getsource(mitm_patches)
    version_note = f"checked against mitmproxy {mitm_patches.CHECKED_AGAINST}"
    assert source.count(version_note) >= 4  # three patch sites, two internals readers
