"""Pure translation between client APIs and OCA's (no mitmproxy here).

Chat Completions is the pivot. One package per client API (`anthropic/`, `responses/`,
`completions/`) turns its requests into a chat request and chat chunks back into its
answers; `chat.py` serves chat clients and assembles streamed chat answers. One module per
kind of upstream model in `upstream/` turns a chat request into the model's own API
(Responses, Messages) and its events back into chat chunks. docs/ARCHITECTURE.md has the
contracts and the routing matrix.
"""
