"""`oca-proxy doctor`: measure what the user's OCA really does, where today we guess.

It uses the user's login and the proxy's options, shares the token file's lock with a
running proxy, reads OCA's model list, shows its plan (how many calls, to which models,
with which tiny prompt) and asks before sending it. Every call is a flow of an embedded
mitmproxy (runner.py). It prints a table, writes `--report FILE` (JSON, no secrets) and
teaches the proxy's learned facts what it found. Exit 0 when it ran, whatever OCA did;
1 with a message when it could not (no login, no network), or when the user said no.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oca_addon.auth.idcs import Idcs
from oca_addon.auth.tokens import TokenFileError, TokenManager, TokenStore, default_token_path
from oca_addon.cli.doctor import report as reports
from oca_addon.cli.doctor.plan import (
    DEFAULT_MAX_CALLS,
    MODEL_LIST,
    PATHS,
    build_plan,
    plan_text,
)
from oca_addon.cli.doctor.read import Reply, error_of, summarize
from oca_addon.cli.main import add_oca_options
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.settings import DEPLOYMENTS, ConfigError, find_config_file, load_settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oca-proxy doctor",
        description="Measure what your OCA really does (model list, APIs, efforts, output "
        "maxima, refusals) with a few tiny calls; anything after `--` goes to the embedded "
        "mitmproxy (`-- --set ssl_insecure=true`).",
    )
    add_oca_options(p)
    p.add_argument("--models", help="only these models (comma list of ids)")
    p.add_argument(
        "--max-calls",
        type=int,
        default=DEFAULT_MAX_CALLS,
        help=f"at most this many calls after the model list (default {DEFAULT_MAX_CALLS})",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before sending")
    p.add_argument("--report", metavar="FILE", help="write the findings as JSON (no secrets)")
    p.add_argument(
        "--save-flows", metavar="FILE", help="save the calls as mitmproxy flows (open in mitmweb)"
    )
    p.add_argument("--no-learn", action="store_true", help="do not write the learned-facts file")
    return p


def _sets(extra: list[str]) -> list[str]:
    """mitmproxy options after `--`: `--set name=value` only."""
    out: list[str] = []
    it = iter(extra)
    for arg in it:
        if arg == "--set":
            value = next(it, None)
            if value is None or "=" not in value:
                raise SystemExit("oca-proxy doctor: `--set` needs name=value")
            out.append(value)
        elif arg.startswith("--set="):
            out.append(arg[len("--set=") :])
        else:
            raise SystemExit(
                f"oca-proxy doctor: only `--set name=value` passes to mitmproxy, not {arg!r}"
            )
    return out


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    args = parser().parse_args(argv)
    sets = _sets(extra)
    try:
        settings_path = find_config_file(args.config)
        settings = load_settings(settings_path)
    except ConfigError as e:
        raise SystemExit(f"oca-proxy doctor: settings file problem: {e}") from None
    mode = args.mode or settings.mode or "internal"
    dep = DEPLOYMENTS[mode]
    base = (args.base_url or settings.base_url or dep.base_url).rstrip("/")
    idcs = Idcs(
        args.idcs_url or settings.idcs_url or dep.idcs_url,
        args.client_id or settings.client_id or dep.client_id,
    )
    store = TokenStore(
        Path(args.token_file).expanduser() if args.token_file else default_token_path()
    )
    try:
        saved = store.read()
    except TokenFileError as e:
        return _fail(f"the login cannot be read ({e}). Run `oca-proxy login`.")
    if saved is None:
        return _fail(f"not logged in (no login in {store.path}). Run `oca-proxy login` first.")
    doctor = Doctor(args, base, mode, store, TokenManager(store, idcs), sets, settings_path)
    try:
        return asyncio.run(doctor.run())
    except KeyboardInterrupt:
        return _fail("interrupted.")


def _fail(message: str) -> int:
    print(f"oca-proxy doctor: {message}", file=sys.stderr)
    return 1


class Doctor:
    def __init__(
        self,
        args: argparse.Namespace,
        base: str,
        mode: str,
        store: TokenStore,
        tokens: TokenManager,
        sets: list[str],
        settings_path: Path,
    ) -> None:
        self.args, self.base, self.mode = args, base, mode
        self.store, self.tokens, self.sets = store, tokens, sets
        self.settings_path = settings_path
        self.secrets: list[str] = []  # scrubbed from the report, wherever they appear

    async def token(self) -> str | None:
        token = await self.tokens.access_token()
        if token and token not in self.secrets:
            self.secrets.append(token)
        return token

    async def run(self) -> int:
        from oca_addon.cli.doctor.runner import DoctorError, EmbeddedProxy

        login = await self.refresh()
        if login is None:
            return _fail(f"{self.tokens.problem or 'the login does not work'}.")
        parts = urlsplit(self.base)
        origin, prefix = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        try:
            async with EmbeddedProxy(
                origin, self.token, sets=self.sets, save_flows=self.args.save_flows
            ) as proxy:
                print(f"Reading OCA's model list: GET {self.base}{PATHS[MODEL_LIST]} (no prompt).")
                listing = await proxy.send("GET", prefix + PATHS[MODEL_LIST], None)
                payload, problem = _model_list(listing)
                if problem:
                    return _fail(f"could not read OCA's model list: {problem}")
                catalog = Catalog.from_model_info(payload)
                models = [m.strip() for m in (self.args.models or "").split(",") if m.strip()]
                plan = build_plan(catalog, models or None, self.args.max_calls)
                print(plan_text(plan, self.base))
                if not self.args.yes and not _confirm():
                    print("Nothing was sent to OCA's models.")
                    return 1
                results = []
                for n, probe in enumerate(plan.probes, 1):
                    reply = await proxy.send(probe.method, prefix + probe.path, probe.body)
                    summary = summarize(probe.api, reply)
                    facts = {"ms": reply.ms, "opc_request_id": reply.request_id}
                    results.append((probe, summary, facts))
                    print(
                        f"  [{n:>2}/{len(plan.probes)}] {probe.model} {probe.label()}: "
                        f"HTTP {reply.status}",
                        flush=True,
                    )
        except DoctorError as e:
            return _fail(str(e))
        found = reports.build(
            base_url=_without_userinfo(self.base),
            mode=self.mode,
            login=login,
            payload=payload,
            plan=plan,
            results=results,
        )
        self.secrets += [t for t in (self.store_token(),) if t]
        found = reports.scrub(found, self.secrets)
        print()
        print(reports.table(found))
        if self.args.report:
            path = Path(self.args.report).expanduser()
            path.write_text(json.dumps(found, indent=2, ensure_ascii=False) + "\n", "utf-8")
            print(f"\nReport written to {path}: attach it to a bug report (it holds no secret).")
        if not self.args.no_learn:
            self.learn(found)
        return 0

    def store_token(self) -> str | None:
        try:
            return self.store.read()
        except TokenFileError:
            return None

    async def refresh(self) -> dict[str, Any] | None:
        """One refresh through the token manager (the file lock, rotation saved first): how
        long an access token lives, and whether the refresh token rotates."""
        before = await asyncio.to_thread(self.store_token)
        print("Refreshing the login with IDCS (under the token file's lock)...")
        tokens = await self.tokens.refresh_now()
        if tokens is None:
            return None
        self.secrets += [t for t in (before, tokens.refresh_token, tokens.access_token) if t]
        return {
            "refresh_rotates": bool(tokens.refresh_token and tokens.refresh_token != before),
            "access_token_lifetime_s": round(tokens.expires_at - tokens.issued_at),
        }

    def learn(self, found: dict[str, Any]) -> None:
        """What was measured, into the proxy's learned facts (when refusals.py is here)."""
        from oca_addon.cli.doctor.learn import learn

        path, new = learn(found, self.settings_path)
        if new:
            print(f"{new} learned facts written to {path} (the proxy applies them).")


def _model_list(reply: Reply) -> tuple[Any, str | None]:
    if reply.status != 200:
        error = error_of(reply)
        return None, f"HTTP {reply.status}: {error.get('message') or error.get('shape')}"
    try:
        payload = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return None, "the answer is not JSON"
    return payload, None


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host).geturl()


def _confirm() -> bool:
    try:
        answer = input("Send them? [y/N] ")
    except EOFError:
        print("\n(no answer: use --yes to run without asking)")
        return False
    return answer.strip().lower() in ("y", "yes")
