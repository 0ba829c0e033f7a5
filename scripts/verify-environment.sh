#!/usr/bin/env bash
# Says which of the ways to run trademesh this machine can use, and what is missing for the others:
#
#   embedded  `make run`: Python 3.11 and make (uv is installed by the Makefile if absent)
#   compose   docker compose: Docker with the compose plugin, the daemon running
#   k8s       `tilt up` on a local cluster: kubectl, helm, tilt, Docker, a reachable kube context
#
#   scripts/verify-environment.sh                  # report on every mode; checks `embedded`
#   scripts/verify-environment.sh --mode k8s       # exit 1 if the k8s mode cannot run here
#
# Exits non-zero only when the chosen mode cannot run (default: embedded). Nothing is changed.
# Plain bash 3.2 (macOS's own): no associative arrays, no `sort -V`.
set -euo pipefail

MODE=embedded
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=${2:-}; shift 2 ;;
    --mode=*) MODE=${1#--mode=}; shift ;;
    --help|-h) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
case "$MODE" in
  embedded|compose|k8s) ;;
  *) echo "--mode must be embedded, compose or k8s (got '$MODE')" >&2; exit 2 ;;
esac

# The oldest versions the project is known to work with; setup-dev-environment.sh installs newer.
MIN_DOCKER=24.0.0
MIN_COMPOSE=2.20.0
MIN_KUBECTL=1.30.0
MIN_HELM=3.14.0
MIN_TILT=0.33.0

TOOLS="python3.11|make|uv|docker|docker compose|kubectl|helm|tilt|k3s|cluster"
needs() {
  # What MODE needs; uv and k3s are optional (the Makefile bootstraps uv, and any local cluster
  # will do for k8s).
  case "$1" in
    embedded) echo "python3.11|make" ;;
    compose) echo "docker|docker compose" ;;
    k8s) echo "kubectl|helm|tilt|docker|cluster" ;;
  esac
}

key() { printf '%s' "$1" | tr -c '[:alnum:]' '_'; }
record() {
  # record TOOL STATUS FOUND [MINIMUM]
  printf -v "status_$(key "$1")" '%s' "$2"
  printf -v "found_$(key "$1")" '%s' "$3"
  printf -v "minimum_$(key "$1")" '%s' "${4:-}"
}
lookup() { local name; name="$1_$(key "$2")"; printf '%s' "${!name:-}"; }

version_of() {
  # The first x.y[.z] in a command's output.
  grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1 || true
}

at_least() {
  # at_least VERSION MINIMUM: compares dotted numbers field by field.
  local IFS=.
  local -a have want
  read -r -a have <<<"$1"
  read -r -a want <<<"$2"
  local i
  for i in 0 1 2; do
    local h=${have[$i]:-0} w=${want[$i]:-0}
    [ "$h" -gt "$w" ] && return 0
    [ "$h" -lt "$w" ] && return 1
  done
  return 0
}

check() {
  # check NAME MINIMUM COMMAND...: whether COMMAND runs and prints a new enough version.
  local name=$1 minimum=$2 output version
  shift 2
  if ! command -v "$1" >/dev/null; then
    record "$name" missing "not installed" "$minimum"; return
  fi
  if ! output=$("$@" 2>&1); then
    # The line that says why: docker prints its client details first and help hints last.
    output=$(printf '%s\n' "$output" | grep -iE 'error|unknown|cannot|not found|no such' \
      | head -1 | cut -c1-80 || true)
    record "$name" missing "${output:-fails}" "$minimum"; return
  fi
  version=$(printf '%s' "$output" | version_of)
  if [ -n "$minimum" ] && ! at_least "${version:-0}" "$minimum"; then
    record "$name" old "${version:-unknown} (needs >= $minimum)" "$minimum"
  else
    record "$name" ok "${version:-unknown}" "$minimum"
  fi
}

# Python 3.11: the workspace pins it (.python-version) and uv may not download interpreters.
# shellcheck disable=SC2329  # run by check(), through "$@"
python_311() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      "$candidate" --version
      return 0
    fi
  done
  echo "no Python 3.11 (python3 is $(python3 --version 2>&1 || echo absent))"
  return 1
}

check python3.11 "" python_311
check make "" make --version
check uv "" uv --version
if [ "$(lookup status uv)" != ok ]; then
  record uv optional "not installed: the Makefile installs it (.trademesh/bootstrap)"
fi
check docker "$MIN_DOCKER" docker version --format '{{.Server.Version}}'
check "docker compose" "$MIN_COMPOSE" docker compose version --short
check kubectl "$MIN_KUBECTL" kubectl version --client
check helm "$MIN_HELM" helm version --short
check tilt "$MIN_TILT" tilt version
check k3s "" k3s --version
if [ "$(lookup status k3s)" != ok ]; then
  record k3s optional "not installed: any local cluster (k3d, kind, Docker Desktop) will do"
fi

# The cluster: a current context that answers within a few seconds.
if [ "$(lookup status kubectl)" != ok ]; then
  record cluster missing "needs kubectl"
elif ! context=$(kubectl config current-context 2>/dev/null); then
  record cluster missing "no current kube context"
elif ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  record cluster missing "context $context does not answer"
else
  record cluster ok "context $context"
fi

printf '%-16s %-8s %s\n' TOOL STATUS FOUND
IFS='|' read -r -a all_tools <<<"$TOOLS"
for tool in "${all_tools[@]}"; do
  printf '%-16s %-8s %s\n' "$tool" "$(lookup status "$tool")" "$(lookup found "$tool")"
done
echo

mode_ok() {
  # Prints whether MODE can run; returns 1 when it cannot.
  local mode=$1 tool
  local -a tools missing=()
  IFS='|' read -r -a tools <<<"$(needs "$mode")"
  for tool in "${tools[@]}"; do
    [ "$(lookup status "$tool")" = ok ] || missing+=("$tool")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    printf '%-9s can run\n' "$mode"
    return 0
  fi
  local list
  list=$(printf '%s, ' "${missing[@]}")
  printf '%-9s cannot run: needs %s\n' "$mode" "${list%, }"
  return 1
}

result=0
for mode in embedded compose k8s; do
  if ! mode_ok "$mode" && [ "$mode" = "$MODE" ]; then
    result=1
  fi
done
if [ "$result" != 0 ]; then
  echo
  echo "The $MODE mode cannot run here."
  case "$MODE" in
    embedded) echo "Install Python 3.11 and make (the Makefile installs uv itself)." ;;
    compose) echo "Install Docker with the compose plugin and start the daemon." ;;
    k8s) echo "scripts/setup-dev-environment.sh installs kubectl, helm, tilt and a local k3s cluster." ;;
  esac
fi
exit "$result"
