"""The addon as a chain of small mitmproxy addons, one concern each.

`oca_addon/_script.py` lists them; mitmproxy calls each hook on each addon in list order,
so the list is the pipeline (docs/ARCHITECTURE.md draws it). They share one `ProxyState`
(state.py), given to each in its constructor.
"""
