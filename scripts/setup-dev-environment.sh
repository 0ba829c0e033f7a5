#!/usr/bin/env bash
# Installs what the Kubernetes dev loop (Tiltfile) needs on a developer's laptop, at pinned
# versions: kubectl, helm and tilt into ~/.local/bin, and a local cluster (Linux: k3s, with a
# local image registry for Tilt; macOS: k3d, which runs k3s in Docker). Docker itself is not
# installed (that is distribution-specific): the script says so if it is missing.
#
#   scripts/setup-dev-environment.sh          # asks before anything that needs sudo
#   scripts/setup-dev-environment.sh --yes    # no questions (CI-like machines)
#   scripts/setup-dev-environment.sh --no-cluster   # the tools only
#
# Idempotent: a tool already at the pinned version is left alone, an existing cluster is kept.
# Afterwards scripts/verify-environment.sh --mode k8s checks the result and
# scripts/start-dev-environment.sh starts the platform. Supported: Linux (amd64, arm64) and
# macOS (Intel, Apple silicon).
set -euo pipefail

KUBECTL_VERSION=v1.36.1
HELM_VERSION=v4.2.3
TILT_VERSION=0.37.5
K3S_VERSION=v1.36.1+k3s1
K3D_VERSION=v5.8.3
REGISTRY_IMAGE=registry:2.8.3
REGISTRY_PORT=5000
CLUSTER_NAME=trademesh

BIN_DIR="${HOME}/.local/bin"
ASSUME_YES=0
WITH_CLUSTER=1

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
  case "$arg" in
    --yes|-y) ASSUME_YES=1 ;;
    --no-cluster) WITH_CLUSTER=0 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

confirm() {
  # Asks on the terminal; --yes answers for the user.
  [ "$ASSUME_YES" = 1 ] && return 0
  local answer
  read -r -p "$1 [y/N] " answer </dev/tty || return 1
  [[ "$answer" =~ ^[Yy]$ ]]
}

OS=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$(uname -m)" in
  x86_64|amd64) ARCH=amd64 ;;
  aarch64|arm64) ARCH=arm64 ;;
  *) die "unsupported CPU architecture $(uname -m)" ;;
esac
case "$OS" in
  linux|darwin) ;;
  *) die "unsupported operating system $OS (Linux and macOS are)" ;;
esac

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

download() {
  # download URL FILE: fails on HTTP errors instead of saving an error page.
  curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

verify_sha256() {
  # verify_sha256 FILE EXPECTED
  local actual
  actual=$(sha256_of "$1")
  [ "$actual" = "$2" ] || die "checksum mismatch for $(basename "$1"): expected $2, got $actual"
}

has_version() {
  # has_version COMMAND VERSION ARGS...: the command exists and prints VERSION.
  local cmd=$1 version=$2
  shift 2
  command -v "$cmd" >/dev/null && "$cmd" "$@" 2>/dev/null | grep -qF "${version#v}"
}

install_kubectl() {
  if has_version kubectl "$KUBECTL_VERSION" version --client; then
    log "kubectl $KUBECTL_VERSION already installed"; return
  fi
  log "installing kubectl $KUBECTL_VERSION into $BIN_DIR"
  local base="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/${OS}/${ARCH}"
  download "$base/kubectl" "$TMP/kubectl"
  download "$base/kubectl.sha256" "$TMP/kubectl.sha256"
  verify_sha256 "$TMP/kubectl" "$(tr -d '[:space:]' <"$TMP/kubectl.sha256")"
  install -m 0755 "$TMP/kubectl" "$BIN_DIR/kubectl"
}

install_helm() {
  if has_version helm "$HELM_VERSION" version --short; then
    log "helm $HELM_VERSION already installed"; return
  fi
  log "installing helm $HELM_VERSION into $BIN_DIR"
  local archive="helm-${HELM_VERSION}-${OS}-${ARCH}.tar.gz"
  download "https://get.helm.sh/${archive}" "$TMP/$archive"
  download "https://get.helm.sh/${archive}.sha256sum" "$TMP/$archive.sha256sum"
  verify_sha256 "$TMP/$archive" "$(cut -d' ' -f1 <"$TMP/$archive.sha256sum")"
  tar -xzf "$TMP/$archive" -C "$TMP"
  install -m 0755 "$TMP/${OS}-${ARCH}/helm" "$BIN_DIR/helm"
}

install_tilt() {
  if has_version tilt "$TILT_VERSION" version; then
    log "tilt $TILT_VERSION already installed"; return
  fi
  log "installing tilt $TILT_VERSION into $BIN_DIR"
  # Tilt names its release archives with mac/linux and x86_64/arm64.
  local os_name=$OS arch_name=$ARCH
  [ "$OS" = darwin ] && os_name=mac
  [ "$ARCH" = amd64 ] && arch_name=x86_64
  local archive="tilt.${TILT_VERSION}.${os_name}.${arch_name}.tar.gz"
  local base="https://github.com/tilt-dev/tilt/releases/download/v${TILT_VERSION}"
  download "$base/$archive" "$TMP/$archive"
  download "$base/checksums.txt" "$TMP/tilt-checksums.txt"
  verify_sha256 "$TMP/$archive" "$(grep " ${archive}\$" "$TMP/tilt-checksums.txt" | cut -d' ' -f1)"
  tar -xzf "$TMP/$archive" -C "$TMP" tilt
  install -m 0755 "$TMP/tilt" "$BIN_DIR/tilt"
}

install_k3d() {
  if has_version k3d "$K3D_VERSION" version; then
    log "k3d $K3D_VERSION already installed"; return
  fi
  log "installing k3d $K3D_VERSION into $BIN_DIR"
  local binary="k3d-${OS}-${ARCH}"
  local base="https://github.com/k3d-io/k3d/releases/download/${K3D_VERSION}"
  download "$base/$binary" "$TMP/k3d"
  download "$base/checksums.txt" "$TMP/k3d-checksums.txt"
  verify_sha256 "$TMP/k3d" "$(grep "_dist/${binary}\$\| ${binary}\$" "$TMP/k3d-checksums.txt" | head -1 | cut -d' ' -f1)"
  install -m 0755 "$TMP/k3d" "$BIN_DIR/k3d"
}

require_docker() {
  if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    die "Docker is needed (Tilt builds the images with it${1:+; $1}) and is not running:
install Docker Engine (Linux) or Docker Desktop / OrbStack / Colima (macOS), then run this again"
  fi
}

# Linux: k3s as a system service, plus a registry on localhost:$REGISTRY_PORT that k3s pulls
# from and Tilt pushes to (Tilt finds it through the local-registry-hosting ConfigMap, KEP-1755).
setup_k3s() {
  require_docker "and runs the local image registry"
  if command -v k3s >/dev/null && k3s --version | grep -qF "${K3S_VERSION}"; then
    log "k3s ${K3S_VERSION} already installed"
  else
    confirm "Install k3s ${K3S_VERSION} as a system service (uses sudo)?" || die "k3s not installed"
    download https://get.k3s.io "$TMP/k3s-install.sh"
    # Read access to the kubeconfig for the user, so kubectl and tilt need no sudo.
    sudo env INSTALL_K3S_VERSION="$K3S_VERSION" K3S_KUBECONFIG_MODE=644 sh "$TMP/k3s-install.sh"
  fi

  if [ "$(docker ps --all --quiet --filter name='^trademesh-registry$')" = "" ]; then
    log "starting the local image registry on 127.0.0.1:${REGISTRY_PORT}"
    docker run --detach --restart=always --name trademesh-registry \
      --publish "127.0.0.1:${REGISTRY_PORT}:5000" "$REGISTRY_IMAGE" >/dev/null
  else
    docker start trademesh-registry >/dev/null
  fi

  local registries=/etc/rancher/k3s/registries.yaml
  local wanted
  wanted=$(printf 'mirrors:\n  "localhost:%s":\n    endpoint:\n      - "http://localhost:%s"\n' "$REGISTRY_PORT" "$REGISTRY_PORT")
  if [ "$(sudo cat "$registries" 2>/dev/null || true)" != "$wanted" ]; then
    confirm "Let k3s pull from the local registry (writes $registries and restarts k3s, uses sudo)?" \
      || die "k3s cannot pull the images Tilt builds without the registry mirror"
    printf '%s\n' "$wanted" | sudo tee "$registries" >/dev/null
    sudo systemctl restart k3s
  fi

  mkdir -p "$HOME/.kube"
  if [ ! -e "$HOME/.kube/config" ]; then
    cp /etc/rancher/k3s/k3s.yaml "$HOME/.kube/config"
    chmod 600 "$HOME/.kube/config"
    log "wrote ~/.kube/config (context: default)"
  elif ! kubectl config get-contexts default >/dev/null 2>&1; then
    log "$HOME/.kube/config exists and has no k3s context: use KUBECONFIG=/etc/rancher/k3s/k3s.yaml"
  fi

  KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}" kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REGISTRY_PORT}"
EOF
  log "k3s is up: $(kubectl get nodes --no-headers 2>/dev/null | wc -l | tr -d ' ') node(s)"
}

# macOS (and Linux without systemd): k3s inside Docker through k3d, with its own registry that
# Tilt discovers by itself.
setup_k3d() {
  require_docker "and runs the k3d cluster"
  install_k3d
  if k3d cluster list --no-headers 2>/dev/null | grep -q "^${CLUSTER_NAME} "; then
    log "k3d cluster ${CLUSTER_NAME} already exists"
  else
    log "creating the k3d cluster ${CLUSTER_NAME} (context k3d-${CLUSTER_NAME})"
    k3d cluster create "$CLUSTER_NAME" --image "rancher/k3s:${K3S_VERSION/+/-}" \
      --registry-create "${CLUSTER_NAME}-registry:0.0.0.0:${REGISTRY_PORT}" \
      --agents 0 --wait
  fi
}

mkdir -p "$BIN_DIR"
install_kubectl
install_helm
install_tilt
case ":$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) log "add $BIN_DIR to your PATH (e.g. in ~/.profile): export PATH=\"$BIN_DIR:\$PATH\"" ;;
esac
export PATH="$BIN_DIR:$PATH"

if [ "$WITH_CLUSTER" = 1 ]; then
  if [ "$OS" = linux ] && command -v systemctl >/dev/null; then
    setup_k3s
  else
    setup_k3d
  fi
fi

log "done: scripts/verify-environment.sh --mode k8s checks it, scripts/start-dev-environment.sh starts the platform"
