"""HostPathProvisioner: a TEST DOUBLE of a dynamic storage provisioner (a CSI driver's
external-provisioner). It is not a storage system.

No storage driver can run here. For each PersistentVolumeClaim of the harness's default
StorageClass it makes a hostPath PersistentVolume (a directory under the session's folder)
pre-bound to that claim, as an external provisioner does; the real PV binder in
kube-controller-manager then binds them, so claims go Pending -> Bound the real way. When the
claim is deleted, its volume is deleted too (reclaim policy Delete).
"""
from __future__ import annotations

from pathlib import Path

from .informer import Informer
from .rest import KubeError, KubeREST

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


class HostPathProvisioner:
    def __init__(self, rest: KubeREST, root: Path, provisioner: str):
        self.rest = rest
        self.root = root
        self.provisioner = provisioner
        self.informer = Informer("storage-provisioner", rest, "v1", "PersistentVolumeClaim", self._on_claim)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()

    def _ours(self, claim: dict) -> bool:
        annotations = claim["metadata"].get("annotations") or {}
        wanted = annotations.get("volume.kubernetes.io/storage-provisioner") or \
            annotations.get("volume.beta.kubernetes.io/storage-provisioner")
        return wanted == self.provisioner

    def _on_claim(self, event_type: str, claim: dict) -> None:
        metadata = claim["metadata"]
        name = f"pvc-{metadata['uid']}"
        if event_type == "DELETED":
            self.rest.delete("v1", "PersistentVolume", name)
            return
        if not self._ours(claim) or claim.get("status", {}).get("phase") == "Bound" or claim["spec"].get("volumeName"):
            return
        if self.rest.read("v1", "PersistentVolume", name) is not None:
            return
        directory = self.root / f"{metadata['namespace']}-{metadata['name']}"
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)
        volume = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: self.provisioner}},
            "spec": {"capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                     "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": claim["spec"].get("storageClassName"),
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "namespace": metadata["namespace"], "name": metadata["name"],
                                  "uid": metadata["uid"]},
                     "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"}}}
        try:
            self.rest.create(volume)
        except KubeError as exc:
            if exc.status != 409:
                raise

    def volume_path(self, namespace: str, claim: str) -> Path:
        """Where a claim's bytes are (the directory its PersistentVolume points at)."""
        return self.root / f"{namespace}-{claim}"
