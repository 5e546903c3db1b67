"""The pure core: plain Python over dicts and bytes, never importing mitmproxy.

Settings and model mapping, routing, OCA's model list, the exchange from a client's request
to OCA's and back, streams, errors, SSE and JSON, the facts learned from OCA's refusals,
security checks, reproduction files, private files, stats. The translators live beside it
in `oca_addon.translate`.
"""
