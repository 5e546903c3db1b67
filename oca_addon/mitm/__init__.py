"""mitmproxy glue that is not an addon: what the addons share (state), the narrow patches,
flow annotations and the OCA content view, the header reader, option checks, answers in an
API's error shape, the refusal retry and oca-proxy's own calls to OCA."""
