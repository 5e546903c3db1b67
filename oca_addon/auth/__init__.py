"""The login to OCA: the refresh-token file and access tokens (tokens), OAuth code + PKCE
with Oracle's identity service (idcs)."""
