#!/usr/bin/env bash
# Starts trademesh for development with one command, in the best mode this machine supports:
#
#   k8s       `tilt up` (the Tiltfile) when tilt, helm, Docker and a reachable local cluster exist
#   embedded  `make run` otherwise: the embedded infrastructure and every service, no containers
#   compose   only when asked: docker compose with the infra, observability and services profiles
#
#   scripts/start-dev-environment.sh                 # k8s if possible, else embedded
#   scripts/start-dev-environment.sh --mode embedded # force a mode
#   scripts/start-dev-environment.sh -- --port 9000  # arguments after -- go to the runner
#
# The chosen mode is checked first by scripts/verify-environment.sh, which says what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

MODE=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=${2:-}; shift 2 ;;
    --mode=*) MODE=${1#--mode=}; shift ;;
    --) shift; break ;;
    --help|-h) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (arguments for the runner go after --)" >&2; exit 2 ;;
  esac
done

verify() {
  scripts/verify-environment.sh --mode "$1" >/dev/null 2>&1
}

case "$MODE" in
  auto)
    if verify k8s; then MODE=k8s; else MODE=embedded; fi
    echo "==> starting in $MODE mode (scripts/verify-environment.sh shows why)"
    ;;
  embedded|compose|k8s)
    if ! verify "$MODE"; then
      scripts/verify-environment.sh --mode "$MODE" || true
      exit 1
    fi
    ;;
  *) echo "--mode must be auto, embedded, compose or k8s (got '$MODE')" >&2; exit 2 ;;
esac

case "$MODE" in
  k8s) exec tilt up "$@" ;;
  embedded) exec make run ARGS="$*" ;;
  compose) exec docker compose --profile infra --profile observability --profile services up --build "$@" ;;
esac
