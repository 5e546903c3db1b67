"""HTML pages the proxy serves itself (pure: strings in, strings out)."""

from __future__ import annotations

from html import escape

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:760px;margin:48px auto;padding:0 20px}
.card{background:#fff;border:1px solid #e3e6eb;border-radius:10px;padding:24px 28px;margin-bottom:18px}
h1{font-size:22px;margin:0 0 8px} .ok{color:#0a7d32} .bad{color:#b42318}
a.button,button{display:inline-block;background:#c74634;color:#fff;border:0;border-radius:6px;
padding:8px 16px;text-decoration:none;font:inherit;cursor:pointer}
a.secondary{background:#e9ecf1;color:#1d2330} code,pre{background:#f0f2f5;border-radius:4px;padding:1px 5px}
pre{padding:10px;overflow:auto}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


def message_page(title: str, text: str, *, ok: bool, actions: list[tuple[str, str]] = ()) -> str:  # type: ignore[assignment]
    links = " ".join(
        f"<a class='button{' secondary' if i else ''}' href='{escape(href)}'>{escape(label)}</a>"
        for i, (label, href) in enumerate(actions)
    )
    cls = "ok" if ok else "bad"
    return page(
        title,
        f"<div class=card><h1 class={cls}>{escape(title)}</h1><p>{escape(text)}</p>"
        f"<p>{links}</p></div>",
    )


def login_success_page(port: int, warning: str | None = None) -> str:
    base = f"http://localhost:{port}"
    note = (
        f"<p class=bad><strong>{escape(warning)}</strong> (saving is retried every minute)</p>"
        if warning
        else ""
    )
    return page(
        "Logged in to OCA",
        f"""<div class=card><h1 class=ok>You are logged in to Oracle Code Assist</h1>{note}
<p>oca-proxy keeps the login fresh from now on. Point your tools at it:</p>
<pre>export OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY=dummy
export ANTHROPIC_BASE_URL={base} ANTHROPIC_AUTH_TOKEN=dummy</pre>
<p><a class=button href="/">Open the dashboard</a>
<a class="button secondary" href="/#setup">Client setup</a></p></div>""",
    )


def logout_confirm_page(csrf: str) -> str:
    return page(
        "Log out of OCA",
        f"""<div class=card><h1>Log out of Oracle Code Assist?</h1>
<p>The saved login is removed from this machine; API calls fail until you log in again.</p>
<form method=post action="/logout"><input type=hidden name=csrf value="{escape(csrf)}">
<button type=submit>Log out</button> <a class="button secondary" href="/">Cancel</a></form></div>""",
    )
