"""mitm_patches replaces or reads private mitmproxy code: this fails, saying what changed,
when a mitmproxy upgrade changes any of it, so that each patch is re-checked by a person.
And the first addon of the chain (MitmPatches) applies them on load, after the same check:
on another mitmproxy it warns once and leaves out each patch whose checked code changed."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import version
from mitmproxy.addonmanager import AddonManager
from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http import HttpStream, _http1, _http2
from mitmproxy.test import taddons

from oca_addon.addons.patches import MitmPatches
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.patches import (
    chunked,
    closeconn,
    cutstream,
    cutupstream,
    earlysend,
    errorpage,
    headlimits,
    http2,
    name_of,
    sendagain,
    wiretoken,
)

ENTRIES = [(name_of(p), name) for p in mitm_patches.PATCHES for name in sorted(p.CHECKED)]


@pytest.mark.parametrize(("patch", "name"), ENTRIES)
def test_patched_mitmproxy_code_is_what_was_checked(patch: str, name: str) -> None:
    recorded = getattr(mitm_patches, patch).CHECKED[name]
    found = mitm_patches.fingerprint(mitm_patches.ORIGINALS[name])
    assert found == recorded, (
        f"mitmproxy.{name} is not the code oca_addon/mitm/patches/{patch}.py was checked "
        f"against (mitmproxy {mitm_patches.CHECKED_AGAINST}; installed: {version.VERSION}). "
        f"Source hash and parameters now {found}, recorded {recorded}. Re-read mitmproxy's "
        f"new code against the patch, fix the patch if needed, then record the new values "
        f"in {patch}.CHECKED and patches.CHECKED_AGAINST."
    )


def test_the_package_checks_what_each_patch_checks() -> None:
    assert {name for _, name in ENTRIES} == set(mitm_patches.CHECKED)
    assert mitm_patches.changed() == []
    assert mitm_patches.check().warning() is None
    assert version.VERSION == mitm_patches.CHECKED_AGAINST  # what pyproject.toml requires


def test_originals_are_mitmproxys_own() -> None:
    """The fingerprints above are of mitmproxy's code, not of our replacements."""
    for name, obj in mitm_patches.ORIGINALS.items():
        assert getattr(obj, "__module__", "").startswith("mitmproxy."), name


def test_apply_replaces_exactly_the_checked_methods() -> None:
    mitm_patches.apply()
    originals = mitm_patches.ORIGINALS
    assert _http1.make_error_response is mitm_patches.error_response_bytes
    assert _http1.Http1Server.send is cutstream._send
    for name, now in (
        ("proxy.layers.http._http1.Http1Client.send", _http1.Http1Client.send),
        ("proxy.layers.http._http2.Http2Client._handle_event2", _http2.Http2Client._handle_event2),
    ):
        assert now is not originals[name]
        assert now.__module__ == wiretoken.__name__
    mitm_patches.apply()  # once only: a second call wraps nothing twice
    assert _http1.Http1Server.send is cutstream._send
    assert _http1.Http1Server.read_headers is http2._read_headers
    assert http2._inner is headlimits._read_headers  # the preface first, then the limits
    # chunked request bodies: the client side only; OCA's answers are read as mitmproxy does
    assert _http1.Http1Server.read_body is chunked._read_body
    assert (
        _http1.Http1Client.read_body
        is originals["proxy.layers.http._http1.Http1Connection.read_body"]
    )
    assert HttpStream.send_response is sendagain._send_response
    assert server.ConnectionHandler.close_connection is closeconn._close_connection
    assert HttpStream.state_consume_request_body is earlysend._consume_request_body
    assert AddonManager.register is earlysend._register
    assert all(p._applied for p in mitm_patches.PATCHES)


@pytest.mark.parametrize("patch", mitm_patches.PATCHES, ids=name_of)
def test_each_patch_says_why_and_what_it_was_checked_against(patch: Any) -> None:
    source = inspect.getsource(patch)
    assert f"checked against mitmproxy {mitm_patches.CHECKED_AGAINST}" in source
    assert patch.__doc__ and patch.CHECKED and patch.BEHAVIOUR


# -- the addon ------------------------------------------------------------------------------

# Where the patches go: (object, attribute, mitmproxy's own value).
SITES = [
    (_http1, "make_error_response", "proxy.layers.http._http1.make_error_response"),
    (_http1.Http1Server, "send", "proxy.layers.http._http1.Http1Server.send"),
    (_http1.Http1Client, "send", "proxy.layers.http._http1.Http1Client.send"),
    (_http2.Http2Client, "_handle_event2", "proxy.layers.http._http2.Http2Client._handle_event2"),
    (
        server.ConnectionHandler,
        "close_connection",
        "proxy.server.ConnectionHandler.close_connection",
    ),
    (_http1.Http1Server, "read_headers", "proxy.layers.http._http1.Http1Server.read_headers"),
    (_http1.Http1Server, "read_body", "proxy.layers.http._http1.Http1Connection.read_body"),
    (HttpStream, "send_response", "proxy.layers.http.HttpStream.send_response"),
    (
        HttpStream,
        "state_consume_request_body",
        "proxy.layers.http.HttpStream.state_consume_request_body",
    ),
    (AddonManager, "register", "addonmanager.AddonManager.register"),
    (AddonManager, "remove", "addonmanager.AddonManager.remove"),
]


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """mitmproxy's own code in place and no patch applied, for this test only (monkeypatch
    puts the patched process back afterwards)."""
    for obj, attr, name in SITES:
        monkeypatch.setattr(obj, attr, mitm_patches.ORIGINALS[name])
    for patch in mitm_patches.PATCHES:
        monkeypatch.setattr(patch, "_applied", False)
    monkeypatch.setattr(http2, "_inner", None)
    yield


def _load(caplog: pytest.LogCaptureFixture) -> MitmPatches:
    addon = MitmPatches()
    with caplog.at_level(logging.WARNING, logger="oca_addon"), taddons.context(addon):
        pass
    return addon


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_addon_applies_the_patches_on_load(
    unpatched: None, caplog: pytest.LogCaptureFixture
) -> None:
    assert _http1.Http1Server.send is mitm_patches.ORIGINALS[SITES[1][2]]
    addon = _load(caplog)
    assert all(p._applied for p in mitm_patches.PATCHES)
    assert _http1.make_error_response is errorpage.error_response_bytes
    assert _http1.Http1Server.send is cutstream._send
    assert _http1.Http1Server.read_headers is http2._read_headers
    assert http2._inner is headlimits._read_headers
    assert HttpStream.send_response is sendagain._send_response
    assert mitm_patches.resend_available()
    assert addon.found is not None and not addon.found.changed
    assert _warnings(caplog) == []


def test_another_mitmproxy_version_is_named_in_one_warning(
    unpatched: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same checked code, another version number: all applied, one warning."""
    monkeypatch.setattr(version, "VERSION", "12.3.2")
    _load(caplog)
    (warning,) = _warnings(caplog)
    assert warning.startswith(
        "oca-proxy's patches were checked against mitmproxy 12.3.1; this is 12.3.2: "
        "the code they patch is the same, so all are applied."
    )
    assert cutstream.BEHAVIOUR in warning and sendagain.BEHAVIOUR in warning
    assert warning.endswith("Install mitmproxy==12.3.1 (uv sync) or report it.")
    assert all(p._applied for p in mitm_patches.PATCHES)


def test_a_changed_function_leaves_its_patch_out(
    unpatched: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mitmproxy's Http1Server.send and HttpStream.send_response changed (a faked hash):
    cutstream and sendagain are not applied, the others are; RefusalRetry sees no resend."""
    checked = dict(mitm_patches.CHECKED)
    for name in (
        "proxy.layers.http._http1.Http1Server.send",
        "proxy.layers.http.HttpStream.send_response",
    ):
        checked[name] = ("0000000000000000", checked[name][1])
    monkeypatch.setattr(mitm_patches, "CHECKED", checked)
    monkeypatch.setattr(version, "VERSION", "12.4.0")
    addon = _load(caplog)
    (warning,) = _warnings(caplog)
    assert "checked against mitmproxy 12.3.1; this is 12.4.0" in warning
    assert (
        "mitmproxy.proxy.layers.http.HttpStream.send_response, "
        "mitmproxy.proxy.layers.http._http1.Http1Server.send changed, "
        "so these patches are not applied: cutstream, sendagain." in warning
    )
    assert cutstream.BEHAVIOUR in warning and sendagain.BEHAVIOUR in warning
    assert errorpage.BEHAVIOUR not in warning
    assert addon.found is not None and addon.found.skipped == ("cutstream", "sendagain")
    # left out: mitmproxy's own code stays
    assert not cutstream._applied and not sendagain._applied
    assert _http1.Http1Server.send is mitm_patches.ORIGINALS[SITES[1][2]]
    assert HttpStream.send_response is mitm_patches.ORIGINALS[SITES[7][2]]
    assert not mitm_patches.resend_available()
    # the others applied
    assert _http1.make_error_response is errorpage.error_response_bytes
    assert _http1.Http1Server.read_headers is http2._read_headers
    assert server.ConnectionHandler.close_connection is closeconn._close_connection
    assert cutupstream._applied and wiretoken._applied and chunked._applied


def test_a_required_patch_is_applied_even_when_its_code_changed(
    unpatched: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the token on the wire no call reaches OCA: wiretoken goes on, named."""
    name = "proxy.layers.http._http1.Http1Client.send"
    monkeypatch.setitem(mitm_patches.ORIGINALS, name, _http1.Http1Client.read_body)
    addon = _load(caplog)
    (warning,) = _warnings(caplog)
    assert "this is 12.3.1: mitmproxy.proxy.layers.http._http1.Http1Client.send changed" in warning
    assert "applied anyway (nothing works without): wiretoken." in warning
    assert addon.found is not None
    assert addon.found.skipped == () and addon.found.forced == ("wiretoken",)
    assert all(p._applied for p in mitm_patches.PATCHES)
    assert _http1.Http1Client.send.__module__ == wiretoken.__name__


def test_a_cut_upstream_is_not_cut_when_left_out(unpatched: None) -> None:
    class Flow:
        class client_conn:
            id = "c1"

    assert not mitm_patches.close_upstream(Flow(), "why")
    assert mitm_patches.upstream_last_activity(Flow()) is None


# -- earlysend: which flows go before the request hooks ---------------------------------------


class _Ours:
    """An addon doing its request work in request_early (as the Gateway does)."""

    def __init__(self, ready: bool = True, name: str = "ours") -> None:
        self.name = name
        self.ready = ready
        self.asked = 0

    def request(self, flow: Any) -> None:
        pass

    def request_early(self, flow: Any) -> bool:
        self.asked += 1
        return self.ready


class _UsersScript:
    def request(self, flow: Any) -> None:
        flow.request.headers["x-changed"] = "1"


def _live_flow() -> Any:
    from mitmproxy.test import tflow

    return tflow.tflow(live=True)


def test_early_send_only_when_every_request_hook_has_nothing_left_to_do() -> None:
    from mitmproxy.addons import anticache, intercept, maplocal, onboarding

    mitm_patches.apply()  # an addon registered: the chain is looked at again
    ours = _Ours()
    builtins = [intercept.Intercept(), anticache.AntiCache(), maplocal.MapLocal()]
    with taddons.context(*builtins, onboarding.Onboarding(), ours) as tctx:
        flow = _live_flow()
        assert earlysend.early_ready(flow) and earlysend.sent_early(flow)
        assert ours.asked == 1
        # mitmproxy's built-ins at work under an option: the usual way
        for addon, option in (
            (builtins[0], {"intercept": "~q"}),
            (builtins[1], {"anticache": True}),
            (builtins[2], {"map_local": ["|~q|/a|/tmp"]}),
        ):
            tctx.configure(addon, **option)
            earlysend.options_changed()
            flow = _live_flow()
            assert not earlysend.early_ready(flow) and not earlysend.sent_early(flow), option
            tctx.options.reset()
            earlysend.options_changed()
        assert earlysend.early_ready(_live_flow())
        # the onboarding app's host, per flow
        onboard = _live_flow()
        onboard.request.host = onboard.request.host_header = tctx.options.onboarding_host
        assert not earlysend.early_ready(onboard)
        # a flow already answered, intercepted, a replay, not live: the usual way
        for change in ("response", "intercepted", "is_replay", "live"):
            flow = _live_flow()
            if change == "response":
                flow.response = _response()
            elif change == "intercepted":
                flow.intercept()
            elif change == "is_replay":
                flow.is_replay = "request"
            else:
                flow.live = False
            assert not earlysend.early_ready(flow), change


def _response() -> Any:
    from mitmproxy.test import tutils

    return tutils.tresp()


def test_any_other_request_hook_means_the_usual_way() -> None:
    mitm_patches.apply()
    ours = _Ours()
    with taddons.context(ours) as tctx:
        assert earlysend.early_ready(_live_flow())
        tctx.master.addons.add(_UsersScript())  # a user's script: it may change the request
        assert not earlysend.early_ready(_live_flow())
    declining = _Ours(ready=False, name="declining")
    with taddons.context(_Ours(), declining):
        flow = _live_flow()
        assert not earlysend.early_ready(flow) and not earlysend.sent_early(flow)
        assert declining.asked == 1
