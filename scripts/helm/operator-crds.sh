#!/usr/bin/env bash
# Fetches prometheus-operator's own CRDs (ServiceMonitor, PrometheusRule, AlertmanagerConfig)
# so the chart tests can have the API server validate the chart's optional monitoring objects
# against the real schemas. They ship inside the operator's Go module
# (example/prometheus-operator-crd/), so they come from the Go module proxy like the rest of
# the toolchain and land in Go's module cache.
#
# Usage:   CRDS=$(bash scripts/helm/operator-crds.sh | tail -1)
# Output:  progress on stderr; the directory holding the CRD files as the last stdout line.
# Env:     SHC_OPERATOR_CRDS              a directory with the CRD files; used instead
#          SHC_PROMETHEUS_OPERATOR_VERSION overrides the pinned version
set -euo pipefail

# v0.85.0: the newest release served; AlertmanagerConfig is still monitoring.coreos.com/v1alpha1.
VERSION="${SHC_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
MODULE=github.com/prometheus-operator/prometheus-operator
CRDS=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_alertmanagerconfigs.yaml)

die() { echo "operator-crds.sh: ERROR: $*" >&2; exit 1; }

has_crds() {
  local f
  for f in "${CRDS[@]}"; do [[ -f "$1/$f" ]] || return 1; done
}

if [[ -n "${SHC_OPERATOR_CRDS:-}" ]]; then
  has_crds "$SHC_OPERATOR_CRDS" || die "SHC_OPERATOR_CRDS=$SHC_OPERATOR_CRDS lacks one of ${CRDS[*]}"
  echo "$SHC_OPERATOR_CRDS"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  [[ -x /usr/local/go/bin/go ]] || die "Go is not installed; install Go or set SHC_OPERATOR_CRDS=/dir holding ${CRDS[*]}"
  export PATH="/usr/local/go/bin:$PATH"
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# A module download needs no go.mod; run it where none can interfere.
dir=$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n "$dir" ]] || die "could not download $MODULE@$VERSION from the Go module proxy"
has_crds "$dir/example/prometheus-operator-crd" || die "$MODULE@$VERSION has no ${CRDS[*]} in example/prometheus-operator-crd"
echo "$dir/example/prometheus-operator-crd"
