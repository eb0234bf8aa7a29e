#!/usr/bin/env bash
# Builds, once, the helm CLI the chart tests use (helm lint, helm template). It comes from the
# Go module proxy (no download sites), compiled with the machine's Go into the same cache as the
# control plane binaries, keyed by version, so later runs take a second.
#
# Usage:   HELM=$(bash scripts/helm/build.sh | tail -1)
# Output:  progress on stderr; the helm binary's path as the last stdout line.
# Env:     SHC_CACHE         cache root (default ~/.cache/self-healing-controller)
#          SHC_HELM          a prebuilt helm binary; used instead of building
#          SHC_HELM_VERSION  overrides the pinned version (a new cache dir)
set -euo pipefail

# v3.22.0: newest Helm 3 served by the proxy; its go.mod says go 1.26.0 and has no replace
# directives, so `go install module@version` builds it with the machine's Go 1.26.
HELM_VERSION="${SHC_HELM_VERSION:-v3.22.0}"
HELM_MODULE=helm.sh/helm/v3
DEST="${SHC_CACHE:-$HOME/.cache/self-healing-controller}/helm/$HELM_VERSION"
HOW_TO_PROVIDE="Either install Go >= 1.26 (https://go.dev/doc/install; the Go module proxy must be reachable) \
or set SHC_HELM=/path/to/helm (a Helm 3 binary)."

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: ERROR: $*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then return 0; fi
  # Non-login shells often lack Go's default install dir on PATH.
  if [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; return 0; fi
  die "Go is not installed, so helm cannot be built. $HOW_TO_PROVIDE"
}

# Same settings as the control plane build: static, stripped, never fetch a toolchain.
go_env() {
  export CGO_ENABLED=0
  export GOFLAGS="-buildvcs=false"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
}

# Version of module $2 required by the go.mod file $1, e.g. v0.35.1.
required_version() { sed -n "s#^[[:space:]]*$2 \(v[^ ]*\)\$#\1#p" "$1" | head -1; }

build_helm() {
  local start=$SECONDS gomod client_go minor
  # Another process may have finished the build while we waited for the lock.
  if [[ -f "$DEST/.complete" && -x "$DEST/helm" ]]; then return; fi
  rm -f "$DEST/.complete"
  gomod=$(cd "$DEST" && go mod download -json "$HELM_MODULE@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f "$gomod" ]] || die "could not download $HELM_MODULE@$HELM_VERSION"
  # Helm's Makefile stamps its version and the Kubernetes version that `helm template` and
  # `helm lint` assume (from its client-go); without them both would claim Kubernetes 1.20.
  client_go=$(required_version "$gomod" k8s.io/client-go)
  [[ -n "$client_go" ]] || die "no k8s.io/client-go requirement in $gomod"
  minor=$(echo "$client_go" | sed -n 's/^v0\.\([0-9]*\)\..*/\1/p')
  local ld="-s -w -X $HELM_MODULE/internal/version.version=$HELM_VERSION -X $HELM_MODULE/internal/version.gitTreeState=clean"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ld+=" -X $HELM_MODULE/$pkg.k8sVersionMajor=1 -X $HELM_MODULE/$pkg.k8sVersionMinor=$minor"
  done
  log "compiling helm $HELM_VERSION (Kubernetes 1.$minor client; a few minutes on 2 cores the first time)"
  (cd "$DEST" && GOBIN="$DEST" go install -trimpath -ldflags="$ld" "$HELM_MODULE/cmd/helm@$HELM_VERSION")
  [[ -x "$DEST/helm" ]] || die "build finished but $DEST/helm is missing"
  # The stamp goes last: its presence means the binary is complete.
  date -u +%FT%TZ >"$DEST/.complete"
  log "built in $((SECONDS - start))s into $DEST"
}

main() {
  if [[ -n "${SHC_HELM:-}" ]]; then
    [[ -x "$SHC_HELM" ]] || die "SHC_HELM=$SHC_HELM is not an executable file"
    echo "$SHC_HELM"
    return
  fi
  # Fast path: no Go, no lock, no network when it is already built.
  if [[ -f "$DEST/.complete" && -x "$DEST/helm" ]]; then
    echo "$DEST/helm"
    return
  fi
  find_go
  go_env
  mkdir -p "$DEST"
  # An exclusive lock so parallel test files or CI steps never build twice at once.
  exec 9>"$DEST.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 3600 9 || die "timed out waiting for another build (lock $DEST.lock)"
  fi
  build_helm
  echo "$DEST/helm"
}

main "$@"
