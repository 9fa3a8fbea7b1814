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
# the Kubeflow training operator's module zip carries its published CRDs (PyTorchJob)
TRAINING_OPERATOR_VERSION=v1.8.1
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
WANT="$WANT modules=$(cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -c1-16)"

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
  [ -d "$SHARE/kwok" ] && [ -f "$SHARE/crds/kubeflow.org_pytorchjobs.yaml" ]
}
if have_all && [ "$(cat "$OUT/versions" 2>/dev/null)" = "$WANT" ]; then
  echo "controlplane: up to date ($WANT)"
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
TRAINING_DIR=$(go mod download -json "github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION" \
  | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
mkdir -p "$SHARE/crds"
cp "$TRAINING_DIR"/manifests/base/crds/kubeflow.org_pytorchjobs.yaml "$SHARE/crds/"
chmod u+w "$SHARE/crds"/*.yaml
echo "$WANT" > "$OUT/versions"
echo "controlplane: built in $(( $(date +%s) - started ))s"
