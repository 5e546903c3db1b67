"""The oca-addon benchmark (issues 8 and 16): how much the proxy adds, side by side with the
simulator alone and bare mitmproxy. Run `uv run python -m bench`; see bench/README.md."""
