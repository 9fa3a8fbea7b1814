#!/usr/bin/env bash
# Build the suite's Kubernetes control plane from Go modules (nothing is downloaded but from
# the Go module proxy): kube-apiserver, kube-controller-manager, kube-scheduler and etcd from
# the wrapper module tests/controlplane/kube (k8s.io/kubernetes with its staging modules
# replaced by their published versions), and KWOK from sigs.k8s.io/kwok.
#
# Skipped when every binary is there and build/controlplane/versions names the same pins
# (the versions, the Go toolchain, and a hash of go.mod/go.sum). Go's own caches
# (~/go/pkg/mod, ~/.cache/go-build) make a rebuild after a pin change mostly a link.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-build/controlplane}
BIN=$OUT/bin
SHARE=$OUT/share
KWOK_VERSION=v0.8.0
# the Kubeflow operators' module zips carry their published CRDs: the training operator's
# PyTorchJob, the MPI Operator v2's MPIJob (kubeflow.org/v2beta1). Only the CRDs are taken; the
# operators' controllers are test doubles (tests/controlplane/training_operator.py, mpi_operator.py)
TRAINING_OPERATOR_VERSION=v1.8.1
MPI_OPERATOR_VERSION=v0.6.0
MODULE=tests/controlplane/kube

if ! command -v go >/dev/null; then
  echo "controlplane: Go is not installed (the suite's Kubernetes control plane is built from Go modules)" >&2
  exit 1
fi

version_of() { awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$MODULE/go.mod"; }
KUBERNETES_VERSION=$(version_of k8s.io/kubernetes)
ETCD_VERSION=$(version_of go.etcd.io/etcd/server/v3)
WANT="kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION"
WANT="$WANT training-operator=$TRAINING_OPERATOR_VERSION $(go env GOVERSION)"
CRDS_WANT="training-operator=$TRAINING_OPERATOR_VERSION mpi-operator=$MPI_OPERATOR_VERSION"
WANT="$WANT modules=$(cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -c1-16)"

module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# the published CRDs, from the module zips the proxy serves (cheap: a download, no build)
fetch_crds() {
  [ -f "$SHARE/crds/versions" ] && [ "$(cat "$SHARE/crds/versions")" = "$CRDS_WANT" ] && return 0
  mkdir -p "$SHARE/crds"
  cp "$(module_dir "github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION")"/manifests/base/crds/kubeflow.org_pytorchjobs.yaml \
     "$(module_dir "github.com/kubeflow/mpi-operator@$MPI_OPERATOR_VERSION")"/manifests/base/kubeflow.org_mpijobs.yaml \
     "$SHARE/crds/"
  chmod u+w "$SHARE/crds"/*.yaml
  echo "$CRDS_WANT" > "$SHARE/crds/versions"
  echo "controlplane: CRDs $CRDS_WANT"
}

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
  [ -d "$SHARE/kwok" ]
}
if have_all && [ "$(cat "$OUT/versions" 2>/dev/null)" = "$WANT" ]; then
  fetch_crds
  echo "controlplane: up to date ($WANT; $CRDS_WANT)"
  exit 0
fi

mkdir -p "$BIN" "$SHARE"
rm -f "$OUT/versions"
started=$(date +%s)
echo "controlplane: building $WANT (cold: 6-13 minutes on 2 cores; cached: seconds)"
abs_bin=$(cd "$BIN" && pwd)
# `tool` builds every tool of the wrapper module; etcd's main package is .../server/v3,
# which Go names `server`
(cd "$MODULE" && go build -o "$abs_bin/" tool)
mv -f "$BIN/server" "$BIN/etcd"
GOBIN=$abs_bin go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# KWOK's own stages and CRDs, from the module source the proxy served
KWOK_DIR=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
rm -rf "$SHARE/kwok" && mkdir -p "$SHARE/kwok/stages" "$SHARE/kwok/crds"
cp "$KWOK_DIR"/kustomize/stage/node/fast/node-initialize.yaml \
   "$KWOK_DIR"/kustomize/stage/node/heartbeat/node-heartbeat.yaml \
   "$KWOK_DIR"/kustomize/stage/pod/fast/pod-ready.yaml \
   "$KWOK_DIR"/kustomize/stage/pod/fast/pod-delete.yaml "$SHARE/kwok/stages/"
cp "$KWOK_DIR"/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml "$SHARE/kwok/crds/"
chmod -R u+w "$SHARE/kwok"
fetch_crds
echo "$WANT" > "$OUT/versions"
echo "controlplane: built in $(( $(date +%s) - started ))s"
