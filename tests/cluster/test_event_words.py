"""Kubernetes events in plain words (pure): exact sentences for the messages the scheduler,
the kubelet, the autoscaler and the device plugin write."""
import pytest

from astrago.spawners.kube.events import plain_words, resource_words, scheduling_words


def event(reason, message):
    return {"reason": reason, "message": message, "type": "Warning"}


def test_insufficient_mig_slice_on_every_node():
    message = ("0/3 nodes are available: 3 Insufficient nvidia.com/mig-1g.10gb. preemption: 0/3 nodes are "
               "available: 3 No preemption victims found for incoming pod.")
    assert plain_words(event("FailedScheduling", message), "1g.10gb") == (
        "no free 1g.10gb slice on any node, waiting (3 nodes checked; 3 nodes: no free 1g.10gb slice)")


def test_mixed_reasons_name_what_is_missing_and_why_each_node_does_not_fit():
    message = ("0/5 nodes are available: 1 Insufficient nvidia.com/mig-1g.10gb, 1 node(s) had untolerated taint "
               "{node-role.kubernetes.io/control-plane: }, 3 node(s) didn't match Pod's node affinity/selector. "
               "preemption: 0/5 nodes are available: 1 No preemption victims found for incoming pod, 4 Preemption "
               "is not helpful for scheduling.")
    assert scheduling_words(message, "1g.10gb") == (
        "no free 1g.10gb slice on any node, waiting (5 nodes checked; 1 node: no free 1g.10gb slice; "
        "1 node: reserved for other work (taint); 3 nodes: no matching GPU)")


@pytest.mark.parametrize("resource,slice_name,words", [
    ("nvidia.com/mig-3g.40gb", "3g.40gb", "3g.40gb slice"),
    ("nvidia.com/gpu", "1g.5gb", "1g.5gb slice"),  # MIG under the single strategy
    ("nvidia.com/gpu", "gpu-1", "whole GPU"),
    ("nvidia.com/gpu", "gpu-4", "set of 4 whole GPUs"),
    ("nvidia.com/gpu.shared", "mps-25", "MPS share (mps-25)"),
    ("cpu", "cpu", "CPU"),
    ("memory", None, "memory"),
])
def test_resource_words(resource, slice_name, words):
    assert resource_words(resource, slice_name) == words


def test_cpu_and_memory_shortage():
    message = "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
    assert scheduling_words(message, "cpu") == (
        "no free CPU and no free memory on any node, waiting (2 nodes checked; 2 nodes: no free CPU; "
        "2 nodes: no free memory)")


def test_nothing_missing_but_nothing_fits():
    message = "0/1 nodes are available: 1 node(s) were unschedulable."
    assert scheduling_words(message) == "no node fits this server yet, waiting (1 node checked; 1 node: cordoned)"


def test_home_volume_not_bound_yet():
    assert scheduling_words('0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. '
                            'preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.') == (
        "waiting for your home volume to be created")


@pytest.mark.parametrize("reason,message,words", [
    ("Scheduled", "Successfully assigned astrago/jupyter-alice to gpu-node-2", "placed on node gpu-node-2"),
    ("Pulling", 'Pulling image "harbor.example.org/astrago/singleuser:1.0"',
     "pulling image harbor.example.org/astrago/singleuser:1.0 (the first start on a node can take a few minutes)"),
    ("Pulled", 'Successfully pulled image "astrago/singleuser:1.0" in 1m2.345s (1m2.345s including waiting). '
               'Image size: 4123456789 bytes.', "image astrago/singleuser:1.0 pulled in 1m2.345s"),
    ("Pulled", 'Container image "astrago/singleuser:1.0" already present on machine',
     "image astrago/singleuser:1.0 is already on the node"),
    ("Failed", 'Failed to pull image "astrago/singleuser:nope": rpc error: code = NotFound desc = not found',
     "cannot pull image astrago/singleuser:nope: rpc error: code = NotFound desc = not found"),
    ("BackOff", 'Back-off pulling image "astrago/singleuser:nope"',
     "still cannot pull image astrago/singleuser:nope; Kubernetes keeps retrying"),
    ("BackOff", "Back-off restarting failed container notebook in pod jupyter-alice_astrago(1234)",
     "JupyterLab keeps crashing on start; an administrator can read the pod's log"),
    ("Created", "Created container notebook", "container created"),
    ("Started", "Started container notebook", "JupyterLab is starting"),
    ("FailedMount", "MountVolume.SetUp failed for volume \"home\" : timeout",
     'your home volume is not attached yet (MountVolume.SetUp failed for volume "home" : timeout)'),
    ("TriggeredScaleUp", "pod triggered scale-up: [{gpu-pool 1->2 (max: 4)}]",
     "the cluster is adding a node for this server"),
    ("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached",
     "the cluster cannot add a node that fits this server"),
    ("UnexpectedAdmissionError", "Allocate failed due to requested number of devices unavailable for "
                                 "nvidia.com/mig-1g.10gb. Requested: 1, Available: 0, which is unexpected",
     "the node had no 1g.10gb slice left when the pod arrived; stop this server and start it again"),
])
def test_kubelet_and_friends(reason, message, words):
    assert plain_words(event(reason, message), "1g.10gb") == words


def test_unknown_events_keep_their_own_words():
    assert plain_words(event("SomethingNew", "whatever")) is None
    assert plain_words(event("FailedScheduling", "a format nobody has seen")) is None
