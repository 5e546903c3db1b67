"""Pure translation between client APIs and OCA's Chat Completions (no mitmproxy here)."""
