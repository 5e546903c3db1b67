"""The dashboard at `/`: one page served by the addon itself. Pure: data in, HTML/JSON out.

- `build_state(...)` shapes everything the page shows (login, URLs, OCA's models, the
  mapping, recent requests, token totals, setup snippets, the mitmweb link) as JSON; the
  page gets it embedded, then keeps current with `GET /api/state` (long poll, local.py).
- `settings_from_form(current, payload)` validates a mapping edit from the page
  (`POST /api/settings`, CSRF-protected in local.py) into new `Settings` to save.
- `render_page(state, csrf, nonce)` is the HTML: vanilla JS and CSS from
  `oca_addon/site/static/` inlined under a nonce-based Content-Security-Policy (`csp(nonce)`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from oca_addon.core.modelinfo import Catalog
from oca_addon.core.security import escape_surrogates
from oca_addon.core.settings import REASONING_EFFORTS, MappingTarget, Settings
from oca_addon.core.stats import RequestRecord, Stats

STATIC = Path(__file__).resolve().parent / "static"
RECENT_LIMIT = 100
API_NAMES = {
    "CHAT_COMPLETIONS": "chat",
    "RESPONSES": "responses",
    "MESSAGES": "messages",
}


class FormError(ValueError):
    """A mapping edit that cannot be saved; the message is shown on the page."""


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


# -- state ---------------------------------------------------------------------------------


def model_rows(catalog: Catalog | None) -> list[dict[str, Any]]:
    rows = []
    for model_id in sorted(catalog.entries if catalog else ()):
        assert catalog is not None
        entry = catalog.entries[model_id]
        info = entry.info
        apis = sorted(entry.apis) or ["CHAT_COMPLETIONS"]
        efforts = info.get("reasoning_effort_options") or []
        rows.append(
            {
                "name": model_id,
                "display_name": entry.display_name,
                "context_window": info.get("context_window") or info.get("max_input_tokens"),
                "max_output_tokens": info.get("max_output_tokens"),
                "vision": bool(info.get("supports_vision")),
                "reasoning": bool(info.get("is_reasoning_model")),
                "caching": bool(info.get("supports_caching")),
                "efforts": [e for e in efforts if isinstance(e, str)],
                "apis": [API_NAMES.get(a, a.lower()) for a in apis],
                "description": info.get("description") or "",
                # OCA's notice for this model, as text: its HTML is never put into the page.
                "banner": html_to_text(entry.banner) if entry.banner else "",
            }
        )
    return rows


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str, limit: int = 600) -> str:
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    text = " ".join("".join(parser.parts).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mapping_state(settings: Settings) -> dict[str, Any]:
    return {
        "default_model": settings.default_model,
        "default_reasoning_effort": settings.default_reasoning_effort or "",
        "model_mapping": [
            {
                "name": name,
                "target": t.target,
                "reasoning_effort": t.reasoning_effort or "",
                "pattern": is_pattern(name),
            }
            for name, t in settings.model_mapping.items()
        ],
    }


def request_row(rec: RequestRecord) -> dict[str, Any]:
    return rec.as_dict()


def totals_rows(stats: Stats) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"model": model, **t} for model, t in stats.totals.items()]
    rows.sort(key=lambda r: (-int(r["requests"]), str(r["model"])))
    return rows


def setup_snippets(base: str, default_model: str, key: str | None) -> list[dict[str, str]]:
    """Ready-to-copy setup for each client, with the proxy's real address."""
    api_key = "$OCA_PROXY_KEY" if key else "dummy"
    key_note = (
        "oca-proxy has a proxy_api_key: export OCA_PROXY_KEY=<that key> first."
        if key
        else "Any API key works: oca-proxy puts your OCA login on every request."
    )
    codex_key = '\nenv_key = "OCA_PROXY_KEY"' if key else ""
    return [
        {
            "id": "claude",
            "title": "Claude Code",
            "lang": "bash",
            "note": "Claude's model names go through your model mapping. " + key_note,
            "code": f"export ANTHROPIC_BASE_URL={base}\n"
            f"export ANTHROPIC_AUTH_TOKEN={api_key}\n"
            "claude",
        },
        {
            "id": "codex",
            "title": "Codex",
            "lang": "toml",
            "note": "In ~/.codex/config.toml; Codex speaks the Responses API. " + key_note,
            "code": 'model = "gpt-5"\n'
            'model_provider = "oca"\n\n'
            "[model_providers.oca]\n"
            'name = "OCA via oca-proxy"\n'
            f'base_url = "{base}/v1"\n'
            f'wire_api = "responses"{codex_key}',
        },
        {
            "id": "openai",
            "title": "OpenAI SDK",
            "lang": "python",
            "note": "Or set OPENAI_BASE_URL and OPENAI_API_KEY in the environment. " + key_note,
            "code": "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{base}/v1", api_key="{api_key}")\n'
            "r = client.chat.completions.create(\n"
            f'    model="{default_model}",\n'
            '    messages=[{"role": "user", "content": "Hello"}],\n'
            ")\n"
            "print(r.choices[0].message.content)",
        },
        {
            "id": "anthropic",
            "title": "Anthropic SDK",
            "lang": "python",
            "note": key_note,
            "code": "import anthropic\n\n"
            f'client = anthropic.Anthropic(base_url="{base}", api_key="{api_key}")\n'
            "m = client.messages.create(\n"
            '    model="claude-sonnet-4-6", max_tokens=1024,\n'
            '    messages=[{"role": "user", "content": "Hello"}],\n'
            ")\n"
            "print(m.content[0].text)",
        },
        {
            "id": "curl",
            "title": "curl",
            "lang": "bash",
            "note": 'Streams the answer; drop "stream" for one JSON object.',
            "code": f"curl {base}/v1/chat/completions \\\n"
            "  -H 'content-type: application/json'"
            + (' -H "x-api-key: $OCA_PROXY_KEY"' if key else "")
            + " \\\n"
            f'  -d \'{{"model": "{default_model}", "stream": true, '
            '"messages": [{"role": "user", "content": "Hello"}]}\'',
        },
    ]


def tilde(path: str | None) -> str | None:
    """A path under the home folder as `~/...` (shorter, and the same on every machine)."""
    if not path:
        return path
    home = str(Path.home())
    if home not in ("", "/") and (path == home or path.startswith(home + "/")):
        return "~" + path[len(home) :]
    return path


def seq(stats: Stats, inflight: int) -> str:
    """Changes whenever the page has something new to show about traffic."""
    done = sum(t["requests"] for t in stats.totals.values())
    return f"{done}.{inflight}"


def build_state(
    health: dict[str, Any],
    catalog: Catalog | None,
    settings: Settings,
    stats: Stats,
    *,
    mitmweb: str | None = None,
    inflight: int = 0,
    now: float | None = None,
    view_note: str | None = None,
) -> dict[str, Any]:
    """Everything the page shows. `health` is LocalPages.health_data() (never a token)."""
    port = health.get("port") or 8669
    base = f"http://localhost:{port}"
    recent = list(stats.recent)[-RECENT_LIMIT:][::-1]
    return {
        "now": now if now is not None else time.time(),
        "seq": seq(stats, inflight),
        "version": health.get("version"),
        "login": {
            "logged_in": bool(health.get("logged_in")),
            "problem": health.get("login_problem"),
            "expires_at": health.get("access_token_expires_at"),
        },
        "mode": health.get("mode"),
        "urls": {
            "proxy": base,
            "openai": f"{base}/v1",
            "anthropic": base,
            "oca": health.get("base_url"),
            "idcs": health.get("idcs_url"),
            "mitmweb": mitmweb,
        },
        "upstream_notices": list(health.get("upstream_notices") or []),
        "files": {
            "settings": tilde(health.get("settings_file")),
            "settings_error": health.get("settings_error"),
            "token": tilde(health.get("token_file")),
        },
        "models": model_rows(catalog),
        "models_known": catalog is not None,
        "settings": mapping_state(settings),
        "efforts": list(REASONING_EFFORTS),
        "recent": [request_row(r) for r in recent],
        "totals": totals_rows(stats),
        "inflight": inflight,
        "view_note": view_note,  # mitmweb drops old flows (addons/viewlimit.py)
        "learning": health.get("learning", True),
        "learned": health.get("learned") or [],  # what OCA's refusals taught (addons/retry.py)
        "uptime_since": stats.started,
        "setup": setup_snippets(base, settings.default_model, settings.proxy_api_key),
    }


# -- the mapping editor ----------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FormError(f"{what} must be text")
    if escape_surrogates(value) != value:  # no settings file could hold it
        raise FormError(f"{what} is not valid Unicode text (it holds a lone surrogate)")
    return value.strip()


def _effort(value: Any, what: str) -> str | None:
    effort = _text(value, what)
    if effort and effort not in REASONING_EFFORTS:
        raise FormError(f"{what} must be one of {', '.join(REASONING_EFFORTS)} (or none)")
    return effort or None


def settings_from_form(current: Settings, payload: Any) -> Settings:
    """The page's mapping edit applied to the current settings (other keys untouched)."""
    if not isinstance(payload, dict):
        raise FormError("send a JSON object")
    rows = payload.get("model_mapping", [])
    if not isinstance(rows, list):
        raise FormError("model_mapping must be a list of {name, target, reasoning_effort}")
    mapping: dict[str, MappingTarget] = {}
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise FormError(f"mapping row {i} must be an object")
        name = _text(row.get("name"), f"row {i}: the client model name")
        target = _text(row.get("target"), f"row {i}: the OCA model")
        effort = _effort(row.get("reasoning_effort"), f"row {i}: the reasoning effort")
        if not name and not target:
            continue  # an empty row the user added and left
        if not name:
            raise FormError(f"row {i}: which client model name should map to {target}?")
        if not target:
            raise FormError(f"'{name}': pick the OCA model it maps to")
        if name in mapping:
            raise FormError(f"'{name}' is mapped twice; keep one row for it")
        mapping[name] = MappingTarget(target, effort)
    default_model = _text(payload.get("default_model"), "the default model")
    if not default_model:
        raise FormError("pick a default model (for names that match nothing)")
    return dataclasses.replace(
        current,
        model_mapping=mapping,
        default_model=default_model,
        default_reasoning_effort=_effort(
            payload.get("default_reasoning_effort"), "the default reasoning effort"
        ),
    )


def unknown_targets(settings: Settings, catalog: Catalog | None) -> list[str]:
    """Mapping targets OCA does not list (saved anyway: the list may be out of date)."""
    if catalog is None or not catalog.models:
        return []
    targets = [t.target for t in settings.model_mapping.values()] + [settings.default_model]
    return sorted({t for t in targets if t not in catalog.models})


# -- the page --------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def csp(nonce: str) -> str:
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no `</script>`, no HTML comment openers."""
    # A lone surrogate (in a path that is not UTF-8) stays a \\uXXXX escape: the page must
    # encode as UTF-8 whatever one odd call left in the recent requests.
    text = escape_surrogates(json.dumps(data, ensure_ascii=False))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(state: dict[str, Any], csrf: str, nonce: str) -> str:
    n = escape(nonce, quote=True)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<meta name=csrf-token content='{escape(csrf, quote=True)}'>"
        "<title>oca-proxy</title>"
        "<link rel=icon href='data:image/svg+xml,"
        "%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 16 16%22%3E"
        "%3Crect width=%2216%22 height=%2216%22 rx=%224%22 fill=%22%23c74634%22/%3E%3C/svg%3E'>"
        f"<style nonce='{n}'>{_asset('dashboard.css')}</style></head>"
        "<body><noscript>The dashboard needs JavaScript; "
        "<a href='/health'>/health</a> has the same facts as JSON.</noscript>"
        "<div id=app></div>"
        f"<script type=application/json id=state nonce='{n}'>{json_for_script(state)}</script>"
        f"<script nonce='{n}'>{_asset('dashboard.js')}</script>"
        "</body></html>"
    )
