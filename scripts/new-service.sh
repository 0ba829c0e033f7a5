#!/usr/bin/env bash
# Generate a service from service-template/ into services/ and register it:
#   scripts/new-service.sh pricing-demo --consumes md.bars.v1 --produces orders.intents.v1
# Options: `scripts/new-service.sh --help`. Same as `uv run trademesh new-service ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory install >/dev/null
uv_bin=$(command -v uv || echo .trademesh/bootstrap/bin/uv)
exec "$uv_bin" run trademesh new-service "$@"
