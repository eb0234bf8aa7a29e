#!/usr/bin/env bash
# Builds, once, the binaries of a real local Kubernetes control plane for the integration
# tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok.
# They come from the Go module proxy (no Docker, no download sites), compiled with the
# machine's Go into a cache outside the repo keyed by version, so later runs take a second.
#
# Usage:   BIN=$(bash scripts/controlplane/build.sh | tail -1)
# Output:  progress on stderr; the bin dir as the last stdout line.
# Env:     SHC_CACHE              cache root (default ~/.cache/self-healing-controller)
#          SHC_K8S_ASSETS         dir with prebuilt etcd kube-apiserver kube-controller-manager
#                                 kube-scheduler kubectl [kwok]; used instead of building
#          KUBEBUILDER_ASSETS     same, used only when it holds all of them
#          SHC_K8S_VERSION / SHC_ETCD_VERSION / SHC_KWOK_VERSION  override the pinned versions
set -euo pipefail

# k8s 1.35.4: newest served 1.35 patch; its go.mod says go 1.25.0, so the machine's Go 1.26
# builds it with no toolchain switch (1.36/1.37 say go 1.26.0: SHC_K8S_VERSION may pick them).
# etcd 3.6.x is the line k8s 1.34+ is tested with; 3.6.16 is its newest served patch.
# kwok 0.7.0 still ships the default Stages (0.8 removed them).
K8S_VERSION="${SHC_K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${SHC_ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${SHC_KWOK_VERSION:-v0.7.0}"
CACHE_ROOT="${SHC_CACHE:-$HOME/.cache/self-healing-controller}/controlplane"
CORE_BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
HOW_TO_PROVIDE="Either install Go >= 1.26 (https://go.dev/doc/install; the Go module proxy must be reachable) \
or set SHC_K8S_ASSETS=/dir holding prebuilt ${CORE_BINS[*]} (and kwok $KWOK_VERSION)."

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: ERROR: $*" >&2; exit 1; }

# True when every named binary is an executable file in dir $1.
has_bins() {
  local dir=$1; shift
  local b
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

missing_bins() {
  local dir=$1; shift
  local b out=()
  for b in "$@"; do [[ -x "$dir/$b" ]] || out+=("$b"); done
  echo "${out[*]}"
}

find_go() {
  if command -v go >/dev/null 2>&1; then return 0; fi
  # Non-login shells often lack Go's default install dir on PATH.
  if [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; return 0; fi
  die "Go is not installed, so the control plane binaries cannot be built. $HOW_TO_PROVIDE"
}

# Everything compiled here is static, reproducible-ish and stripped to keep the cache small.
go_env() {
  export CGO_ENABLED=0
  export GOFLAGS="-buildvcs=false"
  # Respect a GOTOOLCHAIN the project may set; otherwise never fetch a toolchain.
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
}

# Path of a module's go.mod in the module cache (downloads the module if needed).
module_gomod() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p'
}

# go.mod "go" line of a go.mod file, e.g. 1.25.0.
go_line() { sed -n 's/^go \([0-9.]*\)$/\1/p' "$1" | head -1; }

build_kubernetes() {
  local out=$1 src=$2
  local k8s_mod staging_ver major minor staging
  mkdir -p "$src"
  k8s_mod=$(cd "$src" && module_gomod "k8s.io/kubernetes@$K8S_VERSION")
  [[ -f "$k8s_mod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  # k8s.io/kubernetes replaces its staging modules with local paths, so `go install` fails;
  # a wrapper module replaces each of them with its published v0.Y.Z instead. The list comes
  # from the release's own replace block so newer releases (new staging repos) work too.
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$k8s_mod")
  [[ -n "$staging" ]] || die "no staging replace block found in $k8s_mod"
  major=$(echo "$K8S_VERSION" | sed -n 's/^v\([0-9]*\)\.\([0-9]*\)\.\([0-9]*\).*/\1/p')
  minor=$(echo "$K8S_VERSION" | sed -n 's/^v\([0-9]*\)\.\([0-9]*\)\.\([0-9]*\).*/\2/p')
  staging_ver="v0.${K8S_VERSION#v$major.}"
  {
    echo "module shc.local/k8s-build"
    echo
    echo "go $(go_line "$k8s_mod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $staging_ver"; done
    echo ")"
    echo
    echo "tool ("
    local c
    for c in "${K8S_CMDS[@]}"; do echo "	k8s.io/kubernetes/cmd/$c"; done
    echo ")"
  } >"$src/go.mod"
  log "resolving k8s.io/kubernetes $K8S_VERSION dependencies (staging modules at $staging_ver)"
  (cd "$src" && go mod tidy)

  # Same variables the upstream build sets, so clients and the apiserver see the real version.
  local ld="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=()
  for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "compiling ${K8S_CMDS[*]} (many minutes on 2 cores the first time)"
  # One go build for all four shares the compile of common packages; -p 2 matches the cores
  # and keeps peak memory (linking kube-apiserver) well inside 24 GiB.
  (cd "$src" && go build -p 2 -trimpath -ldflags="$ld" -o "$out/" "${pkgs[@]}")
}

build_etcd() {
  local out=$1 src=$2 etcd_mod
  mkdir -p "$src"
  etcd_mod=$(cd "$src" && module_gomod "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  [[ -f "$etcd_mod" ]] || die "could not download go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  # etcd's server module has replace directives too; its main is one call to etcdmain.Main.
  printf 'module shc.local/etcd-build\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$(go_line "$etcd_mod")" "$ETCD_VERSION" >"$src/go.mod"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' \
    >"$src/main.go"
  log "compiling etcd $ETCD_VERSION"
  (cd "$src" && go mod tidy && go build -p 2 -trimpath -ldflags="-s -w" -o "$out/etcd" .)
}

build_kwok() {
  local out=$1
  log "compiling kwok $KWOK_VERSION"
  # kwok has no replace directives, so go install works as is.
  GOBIN="$out" go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

# Runs "$@" holding an exclusive lock on $1, so parallel test files never build twice at once.
with_lock() {
  local lock=$1; shift
  mkdir -p "$(dirname "$lock")"
  exec 9>"$lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 3600 9 || die "timed out waiting for another build (lock $lock)"
  fi
  "$@"
}

# Prebuilt binaries given by the user: link them next to a built kwok if they lack one.
use_assets() {
  local assets=$1 dest bin
  if has_bins "$assets" kwok; then echo "$assets"; return; fi
  dest="$CACHE_ROOT/assets-$(printf %s "$(cd "$assets" && pwd -P)" | sha256sum | cut -c1-12)-kwok-$KWOK_VERSION"
  bin="$dest/bin"
  if [[ ! -f "$dest/.complete" ]] || ! has_bins "$bin" "${CORE_BINS[@]}" kwok; then
    find_go
    go_env
    with_lock "$dest.lock" assemble_assets "$assets" "$dest"
  fi
  echo "$bin"
}

assemble_assets() {
  local assets=$1 dest=$2 b
  # Another process may have finished while we waited for the lock.
  if [[ -f "$dest/.complete" ]] && has_bins "$dest/bin" "${CORE_BINS[@]}" kwok; then return; fi
  mkdir -p "$dest/bin"
  for b in "${CORE_BINS[@]}"; do ln -sfn "$(cd "$assets" && pwd -P)/$b" "$dest/bin/$b"; done
  has_bins "$dest/bin" kwok || build_kwok "$dest/bin"
  date -u +%FT%TZ >"$dest/.complete"
}

build_all() {
  local dest=$1 start=$SECONDS
  # Another process may have finished the build while we waited for the lock.
  if [[ -f "$dest/.complete" ]] && has_bins "$dest/bin" "${CORE_BINS[@]}" kwok; then return; fi
  rm -f "$dest/.complete"
  mkdir -p "$dest/bin"
  # Without the stamp any binary may be a half-written leftover, so build them all again;
  # Go's build cache makes a retry after a partial failure much quicker than the first run.
  build_kubernetes "$dest/bin" "$dest/src/k8s"
  build_etcd "$dest/bin" "$dest/src/etcd"
  build_kwok "$dest/bin"
  has_bins "$dest/bin" "${CORE_BINS[@]}" kwok ||
    die "build finished but binaries are missing: $(missing_bins "$dest/bin" "${CORE_BINS[@]}" kwok)"
  # The stamp goes last: its presence means every binary above is complete.
  date -u +%FT%TZ >"$dest/.complete"
  log "built in $((SECONDS - start))s into $dest/bin"
}

main() {
  if [[ -n "${SHC_K8S_ASSETS:-}" ]]; then
    local miss
    miss=$(missing_bins "$SHC_K8S_ASSETS" "${CORE_BINS[@]}")
    [[ -z "$miss" ]] || die "SHC_K8S_ASSETS=$SHC_K8S_ASSETS lacks: $miss"
    use_assets "$SHC_K8S_ASSETS"
    return
  fi
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    if has_bins "$KUBEBUILDER_ASSETS" "${CORE_BINS[@]}"; then
      use_assets "$KUBEBUILDER_ASSETS"
      return
    fi
    # envtest's bundle has no controller-manager or scheduler, which the tests need.
    log "KUBEBUILDER_ASSETS lacks $(missing_bins "$KUBEBUILDER_ASSETS" "${CORE_BINS[@]}"); building instead"
  fi

  local dest="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
  # Fast path: no Go, no lock, no network when everything is already built.
  if [[ -f "$dest/.complete" ]] && has_bins "$dest/bin" "${CORE_BINS[@]}" kwok; then
    echo "$dest/bin"
    return
  fi
  find_go
  go_env
  with_lock "$dest.lock" build_all "$dest"
  echo "$dest/bin"
}

main "$@"
