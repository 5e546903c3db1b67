"""Config on its own, under mitmproxy's test context: options and the settings file ->
where OCA is (the upstream), the settings and the login's token manager; the mitmproxy
options the addon needs set; bad values refused with OptionsError, naming the option."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import CATALOG, MODE, PREFIX
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

from oca_addon.addons.config import Config
from oca_addon.core.settings import DEPLOYMENTS
from oca_addon.mitm.state import ProxyState

IDCS = "https://idcs.example"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Config, Any]]:
    """Config in a HOME of the test's own, mitmproxy in reverse mode in front of OCA."""
    monkeypatch.setenv("HOME", str(tmp_path))
    c = Config(ProxyState())
    with taddons.context(Proxyserver(), c) as tctx:
        tctx.configure(c, mode=[MODE])
        yield c, tctx


def settings_file(tmp_path: Path, **settings: Any) -> str:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return str(path)


# -- where OCA is ------------------------------------------------------------------------------


def test_the_reverse_target_is_where_oca_is(config: tuple[Config, Any]) -> None:
    c, _ = config
    assert c.state.upstream is not None
    assert c.state.upstream.base_url == "http://127.0.0.1:9" + PREFIX


def test_internal_is_the_default_deployment(config: tuple[Config, Any]) -> None:
    c, tctx = config
    tctx.configure(c, mode=["regular"])
    assert c.state.upstream is not None
    assert c.state.upstream.base_url == DEPLOYMENTS["internal"].base_url


def test_the_external_mode_picks_its_deployment(config: tuple[Config, Any]) -> None:
    c, tctx = config
    tctx.configure(c, mode=["regular"], oca_mode="external")
    dep = DEPLOYMENTS["external"]
    up = c.state.upstream
    assert up is not None
    assert (up.base_url, up.idcs_url, up.client_id, up.mode) == (
        dep.base_url,
        dep.idcs_url,
        dep.client_id,
        "external",
    )


def test_the_base_url_option_wins(config: tuple[Config, Any]) -> None:
    c, tctx = config
    tctx.configure(c, oca_base_url="https://oca.example/own/path")
    assert c.state.upstream is not None
    assert c.state.upstream.base_url == "https://oca.example/own/path"


def test_a_base_url_without_a_path_gets_ocas_api_path(config: tuple[Config, Any]) -> None:
    c, tctx = config
    tctx.configure(c, oca_base_url="https://oca.example")
    assert c.state.upstream is not None
    assert c.state.upstream.base_url == "https://oca.example" + PREFIX


def test_the_settings_file_says_where_the_login_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = settings_file(tmp_path, idcs_url=IDCS, client_id="cid-from-file")
    c = Config(ProxyState())
    with taddons.context(Proxyserver(), c) as tctx:
        tctx.configure(c, mode=[MODE], oca_config=path)  # as at start: all options at once
    up = c.state.upstream
    assert up is not None and (up.idcs_url, up.client_id) == (IDCS, "cid-from-file")


def test_options_win_over_the_settings_file(config: tuple[Config, Any], tmp_path: Path) -> None:
    c, tctx = config
    tctx.configure(c, oca_config=settings_file(tmp_path, idcs_url=IDCS))
    tctx.configure(c, oca_idcs_url="https://other-idcs.example")
    assert c.state.upstream is not None
    assert c.state.upstream.idcs_url == "https://other-idcs.example"


def test_the_settings_file_is_the_options(config: tuple[Config, Any], tmp_path: Path) -> None:
    c, tctx = config
    path = settings_file(tmp_path, default_model="oca/llama-4")
    tctx.configure(c, oca_config=path)
    assert c.state.current_settings().default_model == "oca/llama-4"


def test_the_settings_file_defaults_to_home(config: tuple[Config, Any], tmp_path: Path) -> None:
    c, _ = config
    assert c.state.settings_file is not None
    assert c.state.settings_file.path.is_relative_to(tmp_path)


# -- the login ---------------------------------------------------------------------------------


def test_the_token_file_defaults_to_home(config: tuple[Config, Any], tmp_path: Path) -> None:
    c, _ = config
    assert c.state.tokens is not None
    assert c.state.tokens.store.path == tmp_path / ".oca" / "refresh_token.json"


def test_the_token_file_option(config: tuple[Config, Any], tmp_path: Path) -> None:
    c, tctx = config
    tctx.configure(c, oca_token_file=str(tmp_path / "mine.json"))
    assert c.state.tokens is not None
    assert c.state.tokens.store.path == tmp_path / "mine.json"


def test_the_refresh_margin_option(config: tuple[Config, Any]) -> None:
    c, tctx = config
    tctx.configure(c, oca_refresh_margin=42)
    assert c.state.tokens is not None and c.state.tokens.refresh_margin == 42.0


def test_the_login_follows_the_idcs_it_belongs_to(config: tuple[Config, Any]) -> None:
    c, tctx = config
    before = c.state.tokens
    tctx.configure(c, oca_idcs_url=IDCS)
    assert c.state.tokens is not before
    assert c.state.tokens is not None and c.state.tokens.idcs.idcs_url == IDCS


def test_an_unrelated_option_keeps_the_login(config: tuple[Config, Any]) -> None:
    c, tctx = config
    before = c.state.tokens
    tctx.configure(c, oca_open_browser=False)
    assert c.state.tokens is before


def test_a_new_upstream_forgets_the_model_list(config: tuple[Config, Any]) -> None:
    c, tctx = config
    c.state._catalog = CATALOG
    tctx.configure(c, oca_base_url="https://oca.example")
    assert c.state.cached_catalog is None


# -- mitmproxy's options -----------------------------------------------------------------------


def test_connections_to_oca_are_lazy(config: tuple[Config, Any]) -> None:
    _, tctx = config
    assert tctx.options.connection_strategy == "lazy"


def test_http2_is_off(config: tuple[Config, Any]) -> None:
    _, tctx = config
    assert tctx.options.http2 is False


def test_the_clients_host_header_is_kept(config: tuple[Config, Any]) -> None:
    _, tctx = config
    assert tctx.options.keep_host_header is True


def test_a_forced_option_is_set_back(config: tuple[Config, Any]) -> None:
    _, tctx = config
    tctx.options.update(connection_strategy="eager")
    assert tctx.options.connection_strategy == "lazy"


# -- bad values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("oca_mode", "intenral"),
        ("oca_base_url", "ftp://oca.example"),
        ("oca_base_url", "http://oca.example:port/"),
        ("oca_idcs_url", "not a url"),
        ("oca_refresh_margin", -1),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(
    config: tuple[Config, Any], name: str, value: Any
) -> None:
    c, tctx = config
    with pytest.raises(OptionsError, match=name):
        tctx.configure(c, **{name: value})


def test_a_refused_value_leaves_the_upstream_as_it_was(config: tuple[Config, Any]) -> None:
    c, tctx = config
    before = c.state.upstream
    with pytest.raises(OptionsError):
        tctx.configure(c, oca_base_url="ftp://oca.example")
    assert c.state.upstream == before and tctx.options.oca_base_url == ""
