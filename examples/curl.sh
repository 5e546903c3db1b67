#!/usr/bin/env bash
# curl through oca-proxy (any API key works: the proxy puts your OCA token on).
BASE=${BASE:-http://localhost:8669}
curl -s "$BASE/health"; echo
curl -s "$BASE/v1/models" | head -c 400; echo
curl -sN "$BASE/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"oca/gpt-4.1","stream":true,"messages":[{"role":"user","content":"Hello"}]}'
