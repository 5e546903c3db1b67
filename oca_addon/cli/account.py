"""`oca-proxy login | logout | status`: manage the OCA login from a terminal.

`login` works on headless machines too: it prints the login address; open it in any
browser, sign in, then paste back the address the browser ended on (or just the code).
When the proxy's port is free and a browser is at hand, it catches the callback itself.
"""

from __future__ import annotations

import argparse
import http.server
import os
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from oca_addon.auth.idcs import Idcs, IdcsError, LoginGone, LoginRequest
from oca_addon.auth.tokens import TokenFileError, TokenManager, TokenStore, default_token_path
from oca_addon.cli.ports import port_free
from oca_addon.core.settings import (
    DEPLOYMENTS,
    ConfigError,
    find_config_file,
    load_settings,
    off_oracle,
)


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"oca-proxy {command}")
    p.add_argument("--port", type=int, help="the proxy's port (redirect URI), default 8669")
    p.add_argument("--mode", choices=sorted(DEPLOYMENTS))
    p.add_argument("--idcs-url")
    p.add_argument("--client-id")
    p.add_argument("--config")
    p.add_argument("--token-file")
    if command == "login":
        p.add_argument(
            "--no-browser",
            action="store_true",
            help="print the login address and read back where the browser ended",
        )
    if command == "status":
        p.add_argument(
            "--check",
            action="store_true",
            help="also prove the login works by refreshing it with IDCS",
        )
    return p


def _context(args: argparse.Namespace) -> tuple[Idcs, TokenStore, int]:
    try:
        settings = load_settings(find_config_file(args.config))
    except ConfigError as e:
        raise SystemExit(f"oca-proxy: settings file problem: {e}") from None
    mode = args.mode or settings.mode or "internal"
    dep = DEPLOYMENTS[mode]
    idcs_url = args.idcs_url or settings.idcs_url or dep.idcs_url
    why = off_oracle(idcs_url)
    if why:  # allowed (the simulator, tests), but said plainly
        print(
            f"oca-proxy: warning: the login URL {idcs_url} is not Oracle's ({why}): "
            "your OCA login goes there.",
            file=sys.stderr,
        )
    idcs = Idcs(idcs_url, args.client_id or settings.client_id or dep.client_id)
    path = Path(args.token_file).expanduser() if args.token_file else default_token_path()
    return idcs, TokenStore(path), args.port or _env_port() or settings.port or 8669


def _env_port() -> int | None:
    """PORT, as `oca-proxy` itself reads it (the proxy's port)."""
    value = os.environ.get("PORT")
    return int(value) if value and value.isdigit() else None


def parse_pasted(text: str, login: LoginRequest) -> str:
    """The authorization code from a pasted callback address (state checked) or a bare code."""
    text = text.strip()
    if "?" not in text and "=" not in text:
        if not text:
            raise IdcsError("nothing was pasted")
        return text
    query = parse_qs(urlsplit(text).query if "://" in text or text.startswith("/") else text)
    if "error" in query:
        raise IdcsError(
            f"IDCS refused the login: {query.get('error_description', query['error'])[0]}"
        )
    state = query.get("state", [""])[0] or None
    if state is not None and state != login.state:
        raise IdcsError("that address belongs to another login attempt (state does not match)")
    code = query.get("code", [""])[0]
    if not code:
        raise IdcsError("the pasted address has no code= in it")
    return code


def _catch_callback(port: int, timeout: float = 300) -> str | None:
    """Serve one /callback on localhost:port and return the address it was called with."""
    got: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/callback"):
                self.send_error(404)
                return
            got["path"] = self.path
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(
                b"<h1>Login received</h1><p>You can close this tab and go back to the terminal.</p>"
            )

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 1

    def serve() -> None:
        for _ in range(int(timeout)):
            if "path" in got:
                return
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(timeout)
    server.server_close()
    return got.get("path")


def login(args: argparse.Namespace) -> int:
    idcs, store, port = _context(args)
    attempt = idcs.start_login(f"http://localhost:{port}/callback")
    print("Open this address in a browser and sign in to OCA:\n")
    print(f"  {attempt.url}\n")
    pasted: str | None = None
    if not args.no_browser and port_free(port):
        print(f"Waiting for the browser to come back to http://localhost:{port}/callback ...")
        webbrowser.open(attempt.url)
        pasted = _catch_callback(port)
    if pasted is None:
        print(
            "After signing in, the browser ends on an address starting with "
            f"http://localhost:{port}/callback (the page may not load: that is fine)."
        )
        try:
            pasted = input("Paste that whole address (or just the code) here: ")
        except EOFError:  # stdin closed (Ctrl-D, or nothing to read): nothing was pasted
            print("\nLogin cancelled: nothing was pasted.", file=sys.stderr)
            return 1
    try:
        code = parse_pasted(pasted, attempt)
        tokens = idcs.exchange_code(code, attempt)
        manager = TokenManager(store, idcs)
        manager.save_login(tokens)
    except IdcsError as e:
        print(f"Login failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"Login failed: cannot save it to {store.path}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"Logged in. The login is saved in {store.path}; a running proxy picks it up.")
    return 0


def _local(port: int) -> requests.Session:
    """A session for the proxy on this machine (never through an HTTP proxy of the env)."""
    session = requests.Session()
    session.trust_env = False
    return session


def _proxy_health(port: int) -> dict[str, Any] | None:
    """A running proxy's /health on this port, or None when none answers as one does."""
    try:
        with _local(port) as session:
            health = session.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None
    return health if isinstance(health, dict) and "logged_in" in health else None


def _tell_proxy_logged_out(port: int, path: Path) -> None:
    """Ask a running proxy to look at its token file now, so it stops using the login."""
    try:
        with _local(port) as session:
            answer = session.post(
                f"http://127.0.0.1:{port}/logout", json={"check_token_file": True}, timeout=5
            ).json()
    except (requests.RequestException, ValueError):
        return  # no proxy there (or not ours): nothing to tell
    if not isinstance(answer, dict) or "logged_in" not in answer:
        return
    if not answer["logged_in"]:
        print(f"The proxy on port {port} no longer uses the login.")
        return
    theirs = answer.get("token_file")
    if theirs and Path(theirs) != path:
        print(
            f"The proxy on port {port} uses another token file ({theirs}) and is still "
            f"logged in: `oca-proxy logout --token-file {theirs}` ends that login."
        )
    else:
        print(
            f"The proxy on port {port} is still logged in "
            f"({answer.get('login_problem') or 'login held in memory'}): "
            f"log out on its page, http://localhost:{port}/logout"
        )


def logout(args: argparse.Namespace) -> int:
    _, store, port = _context(args)
    with store.lock:
        existed = store.path.exists()
        store.clear()
    print(f"Logged out: removed {store.path}." if existed else "Not logged in: nothing to remove.")
    _tell_proxy_logged_out(port, store.path)
    return 0


def _check(store: TokenStore, idcs: Idcs) -> int:
    """--check: prove the saved login works by refreshing it with IDCS."""
    try:
        if TokenManager(store, idcs)._refresh_blocking() is None:
            print(f"Check: no login in {store.path}. Run `oca-proxy login`.")
            return 1
        print("Check: IDCS accepted the login (refreshed).")
    except LoginGone as e:
        print(f"Check: the login has expired or was revoked ({e}). Run `oca-proxy login`.")
        return 1
    except IdcsError as e:
        print(f"Check: could not reach IDCS ({e}).")
        return 1
    except TokenFileError as e:
        print(f"Check: {e}.")
        return 1
    return 0


def status(args: argparse.Namespace) -> int:
    """A running proxy is asked first (its login may come from another file, as in
    `oca-proxy demo`); without one, the token file says."""
    idcs, store, port = _context(args)
    health = _proxy_health(port)
    if health is not None:
        logged_in = bool(health.get("logged_in"))
        problem = health.get("login_problem")
        print(
            f"Proxy: running on port {port} ({health.get('mode')} mode, "
            f"OCA {health.get('base_url')})"
        )
        print(f"Token file: {health.get('token_file')}")
        print(
            f"Login: {'logged in' if logged_in else 'not logged in'}"
            + (f" ({problem})" if problem else "")
            + ("" if logged_in else f". Log in at http://localhost:{port}/login")
        )
        if not logged_in:
            return 1
        if args.check and health.get("token_file"):
            theirs = Idcs(str(health.get("idcs_url") or idcs.idcs_url), idcs.client_id)
            return _check(TokenStore(Path(str(health["token_file"]))), theirs)
        return 0
    print(f"Proxy: not running on port {port}")
    print(f"Token file: {store.path}")
    try:
        token = store.read()
    except TokenFileError as e:
        print(f"Login: unreadable ({e}). Run `oca-proxy login`.")
        return 1
    if token is None:
        print("Login: not logged in. Run `oca-proxy login`.")
        return 1
    print("Login: saved")
    return _check(store, idcs) if args.check else 0


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    args = _parser(command).parse_args(rest)
    try:
        return {"login": login, "logout": logout, "status": status}[command](args)
    except KeyboardInterrupt:  # Ctrl-C, e.g. at the login's paste prompt: no traceback
        print(f"\noca-proxy {command}: cancelled.", file=sys.stderr)
        return 130
