"""`oca-proxy`: run mitmdump (or mitmweb) in reverse mode with the addon, and a few chores.

oca-proxy [--port 8669] [--mode internal|external] [--web] ... [-- mitmproxy args]
oca-proxy login [--no-browser] | logout | status
oca-proxy sim [...]     the OCA simulator (API and login)
oca-proxy demo          simulator + proxy, already logged in
oca-proxy replay FILE [--model M]   send a reproduction file (oca.repro) to the proxy again
oca-proxy doctor [--models a,b] [--report FILE] [--yes]   measure what your OCA really does
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from oca_addon import __version__
from oca_addon.cli import ports
from oca_addon.core.security import is_loopback_bind
from oca_addon.core.settings import (
    ALLOWED_PORTS,
    DEPLOYMENTS,
    ConfigError,
    api_base,
    find_config_file,
    load_settings,
)

SCRIPT = Path(__file__).resolve().parent.parent / "_script.py"


def add_oca_options(p: argparse.ArgumentParser) -> None:
    """Where OCA and the login are: the options `oca-proxy` and `oca-proxy doctor` share."""
    p.add_argument("--mode", choices=sorted(DEPLOYMENTS), help="OCA deployment")
    p.add_argument("--base-url", help="OCA API base URL")
    p.add_argument("--idcs-url", help="IDCS (login) URL")
    p.add_argument("--client-id", help="OAuth client id")
    p.add_argument("--config", help="settings file (JSON or YAML)")
    p.add_argument("--token-file", help="refresh token file (default ~/.oca/refresh_token.json)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oca-proxy",
        description="Local OpenAI/Anthropic-compatible gateway to Oracle Code Assist, "
        "as a mitmproxy addon. Anything after `--` goes to mitmproxy untouched.",
        epilog="Subcommands: login, logout, status, sim, demo, replay, doctor "
        "(`oca-proxy login --help`).",
    )
    p.add_argument("--port", type=int, help="listen port: 8669, 8668 or 8667 (env PORT)")
    add_oca_options(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen address (default 127.0.0.1; anything else needs proxy_api_key)",
    )
    p.add_argument("--web", action="store_true", help="run mitmweb instead of mitmdump")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="a mitmproxy option, as mitmproxy's own --set (e.g. web_port=8083, "
        "oca_keepalive=3600); other mitmproxy arguments go after `--`",
    )
    p.add_argument("--no-browser", action="store_true", help="never open a browser")
    p.add_argument("--version", action="version", version=f"oca-proxy {__version__}")
    return p


def build_mitmproxy_args(args: argparse.Namespace, extra: list[str]) -> tuple[str, list[str]]:
    """The mitmproxy program and its arguments for these options."""
    try:
        settings = load_settings(find_config_file(args.config))
    except ConfigError as e:
        raise SystemExit(f"oca-proxy: settings file problem: {e}") from None
    if not is_loopback_bind(args.host) and not (settings.proxy_api_key or _key_option(extra)):
        raise SystemExit(
            f"oca-proxy: refusing to listen on {args.host}: other machines could use your OCA "
            "login. Set a proxy key that clients must send (proxy_api_key in the settings "
            "file, or `-- --set oca_proxy_api_key=KEY`), or keep the default 127.0.0.1."
        )
    mode = args.mode or settings.mode or "internal"
    base = api_base(args.base_url or settings.base_url or DEPLOYMENTS[mode].base_url)
    port = args.port or _env_port() or settings.port or 8669
    if port not in ALLOWED_PORTS:
        print(
            f"oca-proxy: warning: port {port} is not one IDCS accepts for the login "
            f"callback ({', '.join(map(str, ALLOWED_PORTS))}); logging in will fail.",
            file=sys.stderr,
        )
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    origin = f"{parts.scheme}://{parts.netloc}"
    program = "mitmweb" if args.web else "mitmdump"
    argv = [
        "-s",
        str(SCRIPT),
        "--mode",
        f"reverse:{origin}@{args.host}:{port}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "keep_host_header=true",
        "--set",
        "http2=false",  # HTTP/1.1 only (README, "HTTP/1.1 only"); the addon holds to it too
        "--set",
        f"oca_base_url={base}",
        "--set",
        f"oca_mode={mode}",
    ]
    for opt, value in (
        ("oca_idcs_url", args.idcs_url),
        ("oca_client_id", args.client_id),
        ("oca_config", args.config),
        ("oca_token_file", args.token_file),
    ):
        if value:
            argv += ["--set", f"{opt}={value}"]
    if args.no_browser:
        argv += ["--set", "oca_open_browser=false"]
    if program == "mitmweb":
        argv += ["--set", "web_open_browser=" + ("false" if args.no_browser else "true")]
    else:
        argv += ["--flow-detail", "0"]
    return program, argv + extra


def _key_option(extra: list[str]) -> bool:
    """A non-empty `--set oca_proxy_api_key=...` among the mitmproxy arguments."""
    return any(a.startswith("oca_proxy_api_key=") and a.partition("=")[2].strip() for a in extra)


def _env_port() -> int | None:
    value = os.environ.get("PORT")
    return int(value) if value and value.isdigit() else None


def parse_proxy_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """oca-proxy's own options, and the mitmproxy arguments (`--set`s, then all after `--`)."""
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = _parser()
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(
            f"unrecognized arguments: {' '.join(unknown)} (mitmproxy's own arguments go "
            f"after `--`: oca-proxy [options] -- {' '.join(unknown)})"
        )
    sets = [a for value in args.set for a in ("--set", value)]
    return args, sets + extra


def busy_ports(program: str, mitm_args: list[str]) -> str | None:
    """Why mitmproxy could not start here (a port it needs is taken), as one line."""
    mode = mitm_args[mitm_args.index("--mode") + 1]
    host, _, port = mode.rpartition("@")[2].rpartition(":")
    problem = ports.bind_problem(int(port), host.strip("[]"))
    if problem:
        return (
            f"cannot listen on {host}:{port}: {problem} (another oca-proxy, or `oca-proxy "
            "demo`? `oca-proxy status` asks it); choose another port with --port"
        )
    if program == "mitmweb":
        web_host, web_port = ports.web_address(mitm_args)
        problem = ports.bind_problem(web_port, web_host)
        if problem:
            return (
                f"mitmweb cannot listen on {web_host}:{web_port}: {problem} (another "
                "mitmweb?); choose another port with --set web_port=PORT"
            )
    return None


def run_proxy(argv: list[str]) -> int:
    args, extra = parse_proxy_args(argv)
    program, mitm_args = build_mitmproxy_args(args, extra)
    busy = busy_ports(program, mitm_args)
    if busy:
        raise SystemExit(f"oca-proxy: {busy}")
    if program == "mitmweb":
        from mitmproxy.tools.main import mitmweb as run
    else:
        from mitmproxy.tools.main import mitmdump as run
    try:
        result = run(mitm_args)
    except OSError as e:  # a port taken since the check: mitmproxy's own words, no traceback
        raise SystemExit(f"oca-proxy: {e.strerror or e}") from None
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        from oca_addon.sim import main as sim_main

        return int(sim_main(argv[1:]) or 0)
    if argv and argv[0] == "demo":
        from oca_addon.cli.demo import main as demo_main

        return int(demo_main(argv[1:], run_proxy) or 0)
    if argv and argv[0] == "replay":
        return replay_main(argv[1:])
    if argv and argv[0] == "doctor":
        from oca_addon.cli.doctor.command import main as doctor_main

        return doctor_main(argv[1:])
    if argv and argv[0] in ("login", "logout", "status"):
        from oca_addon.cli.account import main as account_main

        return int(account_main(argv) or 0)
    return run_proxy(argv)


def replay_main(argv: list[str]) -> int:
    """`oca-proxy replay FILE`: a reproduction file's request to a running proxy; prints
    the status and the answer (a stream assembled into its text, tool calls and usage)."""
    import requests

    from oca_addon.core import private, repro

    p = argparse.ArgumentParser(prog="oca-proxy replay", description=replay_main.__doc__)
    p.add_argument("file", help="a reproduction file written by the oca.repro command")
    p.add_argument("--model", help="another model than the file's")
    p.add_argument("--effort", choices=repro.EFFORTS, help="another reasoning effort")
    p.add_argument("--proxy", help="the proxy's address (default http://127.0.0.1:PORT)")
    p.add_argument("--key", help="the proxy key, if it has one (default: env OCA_PROXY_KEY)")
    p.add_argument("--raw", action="store_true", help="print a streamed answer as it came")
    args = p.parse_args(argv)
    try:
        data, _ = private.read_bounded(Path(args.file), repro.FILE_MAX)  # refused unread if huge
        req = repro.read_repro(data)
        body = repro.file_body(req, args.model, args.effort)
    except private.FileRefused as e:
        raise SystemExit(f"oca-proxy replay: {args.file}: {e.problem}") from None
    except (OSError, repro.ReplayError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise SystemExit(f"oca-proxy replay: {args.file}: {why}") from None
    if args.proxy:
        base = args.proxy
    else:
        try:
            settings = load_settings(find_config_file(None))
        except ConfigError:
            settings = None
        base = f"http://127.0.0.1:{_env_port() or (settings.port if settings else None) or 8669}"
    try:
        url = repro.target_url(base, req["path"])  # the proxy, and nowhere else
    except repro.ReplayError as e:
        raise SystemExit(f"oca-proxy replay: {e}") from None
    headers = dict(req["headers"])
    key = args.key or os.environ.get("OCA_PROXY_KEY")
    if key:
        headers["x-api-key"] = key
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment, no ~/.netrc
    try:
        resp = session.request(
            req["method"], url, data=body, headers=headers, timeout=600, allow_redirects=False
        )
    except requests.RequestException as e:
        raise SystemExit(f"oca-proxy replay: no answer from {url}: {e}") from None
    finally:
        session.close()
    if resp.is_redirect:
        location = resp.headers.get("location", "")
        print(f"HTTP {resp.status_code} from {url}: a redirect to {location!r}, not followed")
        return 1
    print(f"HTTP {resp.status_code} from {url}")
    content_type = resp.headers.get("content-type", "")
    if "text/event-stream" in content_type and not args.raw:
        from oca_addon.mitm.contentview import render_stream

        print(render_stream(resp.content))
    else:
        try:
            print(json.dumps(resp.json(), indent=2, ensure_ascii=False))
        except (ValueError, RecursionError):
            print(resp.text)
    return 0 if resp.status_code < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
