#!/usr/bin/env bash
# Generate a service from service-template/ into services/, register it and install it:
#   scripts/new-service.sh pricing-demo --consumes md.bars.v1 --produces orders.intents.v1
# Options: `scripts/new-service.sh --help`. Same as `./trademesh new-service ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./trademesh new-service "$@"
