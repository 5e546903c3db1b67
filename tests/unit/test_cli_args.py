"""The `oca-proxy` command's arguments: what it gives mitmdump (loopback bind, mode, the
settings file checked), without starting anything; tests/e2e/test_cli.py runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import PREFIX

from oca_addon.cli.main import _parser, build_mitmproxy_args


def test_build_args_binds_loopback_and_passes_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PORT", "8668")
    args = _parser().parse_args(["--mode", "external", "--no-browser"])
    program, argv = build_mitmproxy_args(args, ["--set", "x=y"])
    assert program == "mitmdump"
    mode = argv[argv.index("--mode") + 1]
    assert mode == "reverse:https://code.aiservice.us-chicago-1.oci.oraclecloud.com@127.0.0.1:8668"
    assert "oca_open_browser=false" in argv and argv[-2:] == ["--set", "x=y"]
    assert "connection_strategy=lazy" in argv
    program, _ = build_mitmproxy_args(_parser().parse_args(["--web"]), [])
    assert program == "mitmweb"


def test_cli_refuses_a_settings_file_others_may_write(tmp_path: Path) -> None:
    """Issue 23, item 1: such a file may point idcs_url at another user's server."""
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"idcs_url": "http://127.0.0.1:1"}))
    cfg.chmod(0o666)
    args = _parser().parse_args(["--config", str(cfg)])
    with pytest.raises(
        SystemExit, match=re.escape(f"writable by other users (mode 0666); run chmod 600 {cfg}")
    ):
        build_mitmproxy_args(args, [])
    cfg.chmod(0o600)
    build_mitmproxy_args(args, [])


def test_base_url_without_the_api_path_gets_it(tmp_path: Path, monkeypatch) -> None:
    """Issue 23.15: `--base-url https://host` gave OCA's 404 for every call."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for given in ("http://127.0.0.1:9", "http://127.0.0.1:9/"):
        _, argv = build_mitmproxy_args(_parser().parse_args(["--base-url", given]), [])
        assert f"oca_base_url=http://127.0.0.1:9{PREFIX}" in argv
    _, argv = build_mitmproxy_args(_parser().parse_args(["--base-url", "http://h/x/y/"]), [])
    assert "oca_base_url=http://h/x/y" in argv  # a path of its own is kept
