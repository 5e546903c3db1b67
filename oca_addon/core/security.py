"""Who may use the proxy: pure checks the addon runs before anything else.

The proxy holds the user's OCA login, so by default only programs on this machine may use
it, and a web page the user happens to visit may not:

- it listens on loopback, and a non-loopback listen address needs a proxy key
  (`proxy_api_key`, sent by clients as `x-api-key` or `Authorization: Bearer`);
- connections from other machines are refused unless the user opened it up (with a key);
- `Host` must name this machine (`localhost`, `127.0.0.1`, `[::1]`) and the proxy's port, so a
  DNS-rebinding page (evil.example resolving to 127.0.0.1) gets nowhere;
- a browser's `Origin` must be the proxy's own, so no other site can spend the user's quota,
  log them out or change settings through their browser.

No mitmproxy import: everything here is plain functions over strings.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
CROSS_SITE = frozenset({"cross-site", "same-site"})  # same-site: e.g. another localhost port


@functools.lru_cache(maxsize=256)  # asked on every request, by few distinct peers
def is_loopback_ip(address: str | None) -> bool:
    """A peer address (`127.0.0.1`, `::1`, `::ffff:127.0.0.1`, `fe80::1%lo`) is this machine."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.rsplit("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_loopback_bind(host: str | None) -> bool:
    """A listen address that only this machine can reach. "" and 0.0.0.0 mean every interface."""
    if host is None or host.strip() == "":
        return False
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    return is_loopback_ip(host)


def split_host_port(value: str) -> tuple[str, int | None] | None:
    """`localhost:8669` -> ("localhost", 8669); `[::1]:8669` -> ("::1", 8669); None if malformed."""
    value = value.strip()
    if not value or any(c.isspace() or c in "/@?#\\" for c in value):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        if value.count(":") > 1:
            return None  # a bare IPv6 address needs brackets in Host
        host, sep, after = value.partition(":")
        port_text = after if sep else None
    if not host:
        return None
    if port_text is None:
        return host.lower(), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host.lower(), int(port_text)


@functools.lru_cache(maxsize=256)
def host_allowed(host_header: str | None, port: int) -> bool:
    """DNS-rebinding guard: the Host names this machine (and, if it has a port, ours)."""
    if not host_header:
        return False
    parsed = split_host_port(host_header)
    if parsed is None:
        return False
    host, host_port = parsed
    return host in LOOPBACK_NAMES and (host_port is None or host_port == port)


def own_origins(port: int) -> frozenset[str]:
    """The origins of the proxy's own pages."""
    return frozenset(
        {f"http://localhost:{port}", f"http://127.0.0.1:{port}", f"http://[::1]:{port}"}
    )


def origin_allowed(origin: str | None, port: int, host_header: str | None = None) -> bool:
    """No Origin (SDKs, curl, navigations) is fine; a browser's must be the proxy's own.

    `host_header` lets a proxy opened up to the network (with a key) accept its own pages
    under the name it was reached by: same origin means same scheme, host and port.
    """
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in own_origins(port):
        return True
    if host_header and origin.startswith("http://"):
        parts = urlsplit(origin)
        parsed = split_host_port(host_header)
        if parsed is not None and parts.hostname and not parts.path:
            host, host_port = parsed
            try:
                origin_port = parts.port or 80
            except ValueError:
                return False
            return parts.hostname == host.strip("[]") and origin_port == (host_port or 80)
    return False


def client_key(headers: Mapping[str, str]) -> list[str]:
    """The keys a client presented: `x-api-key` and/or `Authorization: Bearer ...`."""
    keys: list[str] = []
    x_api_key = headers.get("x-api-key")
    if x_api_key:
        keys.append(x_api_key.strip())
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        keys.append(value.strip())
    return keys


def key_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison (of UTF-8 bytes: compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def any_key_matches(headers: Mapping[str, str], expected: str) -> bool:
    # Every presented key is compared (no early exit on the first header).
    results = [key_matches(k, expected) for k in client_key(headers)]
    return any(results)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status and a message a person can act on."""

    status: int
    message: str
    code: str


def check_request(
    *,
    method: str,
    host_header: str | None,
    origin: str | None,
    headers: Mapping[str, str],
    peer: str | None,
    port: int,
    api: bool,
    proxy_key: str | None,
    open_to_network: bool,
) -> Refusal | None:
    """All request-level checks in order; None means go ahead.

    api: the path is the model API (every method is checked for Origin, and the key is
    required when one is configured); pages only refuse a foreign Origin on requests that
    change something (not GET/HEAD). Peers on other machines (only possible when the user
    opened the proxy up, with a key) must present the key on every request.
    """
    local_peer = is_loopback_ip(peer)
    if not local_peer and not (open_to_network and proxy_key):
        return Refusal(
            403,
            "oca-proxy only serves this machine; requests from other machines are refused.",
            "forbidden_peer",
        )
    # Other machines (allowed in only with the key) reach it by whatever name it has; on
    # this machine the name must be a loopback one, or it is a DNS-rebinding page.
    if local_peer and not host_allowed(host_header, port):
        return Refusal(
            403,
            f"oca-proxy refused a request for Host {host_header!r}: it only answers to "
            f"localhost:{port}, 127.0.0.1:{port} or [::1]:{port} (DNS-rebinding protection).",
            "forbidden_host",
        )
    if (
        origin is not None
        and (api or method.upper() not in SAFE_METHODS)
        and not origin_allowed(origin, port, None if local_peer else host_header)
    ):
        return Refusal(
            403,
            f"oca-proxy refused a cross-site request from {origin[:200]!r}: web pages "
            "other than oca-proxy's own may not use it.",
            "forbidden_origin",
        )
    # Browsers send no Origin on some simple GETs, but always Sec-Fetch-Site.
    fetch_site = (headers.get("sec-fetch-site") or "").strip().lower()
    if fetch_site in CROSS_SITE and (api or method.upper() not in SAFE_METHODS):
        return Refusal(
            403,
            "oca-proxy refused a request a web page made from another site "
            f"(Sec-Fetch-Site: {fetch_site}): only oca-proxy's own pages may use it.",
            "forbidden_origin",
        )
    if proxy_key and (api or not local_peer):
        if not client_key(headers):
            return Refusal(
                401,
                "oca-proxy needs its proxy key: send it as the x-api-key header or as "
                "Authorization: Bearer <key> (the client's API key setting).",
                "missing_api_key",
            )
        if not any_key_matches(headers, proxy_key):
            return Refusal(
                401,
                "oca-proxy's proxy key does not match: set the client's API key to the "
                "proxy_api_key of oca-proxy's settings.",
                "invalid_api_key",
            )
    return None


# -- secrets and control characters in log text ----------------------------------------------
# mitmproxy's debug output (proxy_debug) prints raw request heads, e.g.
# `b'...\r\nauthorization: Bearer <token>\r\n...'` and `Headers[(b'x-api-key', b'...')]`:
# these patterns find the secret in those shapes; the value stops at quotes, backslashes
# (escapes in a bytes repr), commas and whitespace.

REDACTED_TEXT = "<redacted>"
_VALUE = r"[^\s'\"\\,;&<>…]+"
_SECRET_PATTERNS = (
    # Any bearer credential, wherever it appears.
    re.compile(r"(?i)(\bbearer\s+)" + _VALUE),
    # A header or field that holds a key: `name: value`, `'name': 'value'`, `(b'name', b'value')`.
    re.compile(
        r"(?i)(\b(?:x-api-key|api-key|proxy-authorization|authorization|refresh_token|"
        r"access_token|id_token|proxy_api_key)['\"]?\s*(?:[:=]|,)\s*(?:b?['\"])?+"
        r"(?:(?:basic|digest|token|apikey)\s+)?+)(?!bearer\s)" + _VALUE
    ),
)


def redact_secrets(text: str, literals: frozenset[str] = frozenset()) -> str:
    """Text with every key, token and known secret replaced by <redacted>."""
    for secret in literals:
        if secret in text:
            text = text.replace(secret, REDACTED_TEXT)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED_TEXT, text)
    return text


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    return repr(m.group())[1:-1]


def escape_controls(text: str) -> str:
    """Control characters (newline, escape, ...) shown as escapes: client input cannot
    forge a log line or drive the terminal. Lone surrogates too (a `"\\ud800"` in JSON, a
    byte that is not UTF-8 in a path): no UTF-8 output could hold them."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(_escape, text)


def escape_surrogates(text: str) -> str:
    """Lone surrogates shown as escapes, so that the text encodes as UTF-8 (flow comments,
    which saved flows and mitmweb encode, and JSON written with ensure_ascii=False)."""
    if text.isascii() or not _SURROGATES.search(text):
        return text
    return _SURROGATES.sub(_escape, text)


# -- frame protection ----------------------------------------------------------------------------

FRAME_OPTIONS = "DENY"


def with_frame_ancestors(csp: str | None) -> str:
    """A Content-Security-Policy that forbids framing, keeping every other directive."""
    directives = [d.strip() for d in (csp or "").split(";") if d.strip()]
    kept = [d for d in directives if d.split()[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, "frame-ancestors 'none'"])
