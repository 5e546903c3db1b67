"""`oca-proxy login | logout | status`: manage the OCA login from a terminal.

`login` works on headless machines too: it prints the login address; open it in any
browser, sign in, then paste back the address the browser ended on (or just the code).
When the proxy's port is free and a browser is at hand, it catches the callback itself.
"""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from .config import DEPLOYMENTS, ConfigError, find_config_file, load_settings, off_oracle
from .idcs import Idcs, IdcsError, LoginGone, LoginRequest
from .tokens import TokenFileError, TokenManager, TokenStore, default_token_path


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
    return idcs, TokenStore(path), args.port or settings.port or 8669


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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    if not args.no_browser and _port_free(port):
        print(f"Waiting for the browser to come back to http://localhost:{port}/callback ...")
        webbrowser.open(attempt.url)
        pasted = _catch_callback(port)
    if pasted is None:
        print(
            "After signing in, the browser ends on an address starting with "
            f"http://localhost:{port}/callback (the page may not load: that is fine)."
        )
        pasted = input("Paste that whole address (or just the code) here: ")
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


def logout(args: argparse.Namespace) -> int:
    _, store, _ = _context(args)
    with store.lock:
        existed = store.path.exists()
        store.clear()
    print(f"Logged out: removed {store.path}." if existed else "Not logged in: nothing to remove.")
    return 0


def status(args: argparse.Namespace) -> int:
    idcs, store, port = _context(args)
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
    if args.check:
        try:
            TokenManager(store, idcs)._refresh_blocking()
            print("Check: IDCS accepted the login (refreshed).")
        except LoginGone as e:
            print(f"Check: the login has expired or was revoked ({e}). Run `oca-proxy login`.")
            return 1
        except IdcsError as e:
            print(f"Check: could not reach IDCS ({e}).")
            return 1
    try:
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
        print(
            f"Proxy: running on port {port} ({health.get('mode')} mode, "
            f"{'logged in' if health.get('logged_in') else 'not logged in'})"
        )
    except (requests.RequestException, ValueError, json.JSONDecodeError):
        print(f"Proxy: not running on port {port}")
    return 0


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    args = _parser(command).parse_args(rest)
    return {"login": login, "logout": logout, "status": status}[command](args)
