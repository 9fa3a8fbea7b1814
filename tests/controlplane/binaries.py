"""Where the control plane's binaries are (built by `make controlplane`, see build.sh)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ASTRAGO_CONTROLPLANE_DIR", REPO / "build" / "controlplane"))
BIN = BUILD / "bin"
SHARE = BUILD / "share"
STAGES = Path(__file__).parent / "stages"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def binary(name: str) -> Path:
    return BIN / name


def missing() -> list[str]:
    """Components not built yet (empty when `make controlplane` has run)."""
    gone = [name for name in COMPONENTS if not os.access(binary(name), os.X_OK)]
    if not (SHARE / "kwok" / "stages").is_dir():
        gone.append("KWOK's stages (build/controlplane/share/kwok)")
    if not (SHARE / "crds" / "kubeflow.org_pytorchjobs.yaml").is_file():
        gone.append("Kubeflow's PyTorchJob CRD (build/controlplane/share/crds)")
    if not (SHARE / "crds" / "kubeflow.org_mpijobs.yaml").is_file():
        gone.append("Kubeflow's MPIJob CRD (build/controlplane/share/crds)")
    return gone


def versions() -> str:
    """The pinned versions the binaries were built at (build/controlplane/versions)."""
    try:
        return (BUILD / "versions").read_text().strip()
    except OSError:
        return ""


def kubectl() -> str | None:
    """A kubectl binary, when one is on PATH (none is built: the harness does not need one)."""
    built = BIN / "kubectl"
    return str(built) if os.access(built, os.X_OK) else shutil.which("kubectl")
