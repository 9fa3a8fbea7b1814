"""Inventory sources: static cluster files, NVML (recorded responses), Kubernetes Node objects."""

import json
from pathlib import Path

import pytest

from astrago.spawners.inventory import (
    ClusterInventory,
    GPUDevice,
    InvalidInventory,
    InventoryUnavailable,
    MigInstance,
    NodeInventory,
    inventory_from_cluster_spec,
    load_static_inventory,
    nodes_from_kubernetes,
    read_nvml_inventory,
)
from astrago.spawners.inventory.nvml import record_nvml_responses

from nvml_replay import FIXTURES, RecordedNvml


# --------------------------------------------------------------------------- static

CLUSTER_YAML = """\
nodes:
  - name: n1
    gpus:
      - {model: H100-80GB, mode: mig, geometry: {"3g.40gb": 1, "4g.40gb": 1}}
      - {model: H100-80GB, mode: mps, mps_replicas: 4}
      - {model: A30, mode: full, uuid: GPU-real-a30}
      - model: A30
        mode: mig
        instances:
          - {profile: 2g.12gb, start: 2, uuid: MIG-real-1}
          - {profile: 1g.6gb, start: 0}
      - {model: H100-80GB, mode: mig}
"""


def test_static_yaml(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER_YAML)
    assert load_static_inventory(path) == ClusterInventory(nodes=[NodeInventory(
        name="n1", source="static", simulated=True, gpus=[
            GPUDevice(index=0, uuid="GPU-sim-n1-0", model="H100-80GB", product_name="NVIDIA H100 80GB",
                      memory_mib=81920, mode="mig", mig_instances=[
                          MigInstance(uuid="MIG-sim-n1-0-0-4g.40gb", profile="4g.40gb", start=0),
                          MigInstance(uuid="MIG-sim-n1-0-4-3g.40gb", profile="3g.40gb", start=4)]),
            GPUDevice(index=1, uuid="GPU-sim-n1-1", model="H100-80GB", product_name="NVIDIA H100 80GB",
                      memory_mib=81920, mode="mps", mps_replicas=4),
            GPUDevice(index=2, uuid="GPU-real-a30", model="A30", product_name="NVIDIA A30 24GB",
                      memory_mib=24576, mode="full"),
            GPUDevice(index=3, uuid="GPU-sim-n1-3", model="A30", product_name="NVIDIA A30 24GB",
                      memory_mib=24576, mode="mig", mig_instances=[
                          MigInstance(uuid="MIG-real-1", profile="2g.12gb", start=2),
                          MigInstance(uuid="MIG-sim-n1-3-0-1g.6gb", profile="1g.6gb", start=0)]),
            GPUDevice(index=4, uuid="GPU-sim-n1-4", model="H100-80GB", product_name="NVIDIA H100 80GB",
                      memory_mib=81920, mode="mig"),
        ])])


def test_static_json_equals_yaml(tmp_path):
    import yaml

    (tmp_path / "c.yaml").write_text(CLUSTER_YAML)
    (tmp_path / "c.json").write_text(json.dumps(yaml.safe_load(CLUSTER_YAML)))
    assert load_static_inventory(tmp_path / "c.json") == load_static_inventory(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "gpu, message",
    [
        ({"model": "T4"}, "cluster spec: node 'n1' gpu 0: unknown model 'T4'; known: A30, A100-40GB, A100-80GB, "
                          "H100-80GB, H100-NVL-94GB, H200-141GB"),
        ({"model": "A30", "mode": "mig", "geometry": {"4g.24gb": 2}},
         "cluster spec: node 'n1' gpu 0: {'4g.24gb': 2} does not fit on one A30 beside []."),
        ({"model": "A30", "mode": "mig", "instances": [{"profile": "2g.12gb", "start": 1}]},
         "cluster spec: node 'n1' gpu 0: 2g.12gb cannot start at 1 on A30"),
        ({"model": "A30", "mode": "mig", "instances": [{"profile": "2g.12gb", "start": 0},
                                                       {"profile": "1g.6gb", "start": 1}]},
         "cluster spec: node 'n1' gpu 0: 1g.6gb at 1 overlaps another instance"),
        ({"model": "A30", "mode": "full", "geometry": {"4g.24gb": 1}},
         "cluster spec: node 'n1' gpu 0: geometry and instances need mode 'mig'"),
        ({"model": "A30", "mode": "mps", "mps_replicas": 3},
         "cluster spec: node 'n1' gpu 0: mps_replicas must be one of (2, 4, 5, 10)"),
    ],
)
def test_static_refuses_what_cannot_exist(gpu, message):
    with pytest.raises(InvalidInventory) as error:
        inventory_from_cluster_spec({"nodes": [{"name": "n1", "gpus": [gpu]}]})
    assert str(error.value) == message


def test_shipped_benchmark_cluster_file_loads():
    path = Path(__file__).parents[2] / "bench" / "traces" / "cluster.yaml"
    inventory = load_static_inventory(path)
    assert inventory.gpu_count > 0 and all(node.simulated for node in inventory.nodes)


# --------------------------------------------------------------------------- NVML

def test_nvml_dgx_h100_recorded():
    nvml = RecordedNvml.from_fixture("nvml_dgx_h100_mig.json")
    assert read_nvml_inventory("dgx-1", nvml=nvml) == NodeInventory(name="dgx-1", source="nvml", simulated=False, gpus=[
        GPUDevice(index=0, uuid="GPU-8e2e1a6b-3d44-4b0e-9f5a-0c1d2e3f4a5b", model="H100-80GB",
                  product_name="NVIDIA H100 80GB HBM3", memory_mib=81559, mode="mig", mig_instances=[
                      MigInstance("MIG-1b8f7a50-5c2e-5f0a-8d31-6a4e2b9c7d10", "4g.40gb", 0, gi_id=2, ci_id=0),
                      MigInstance("MIG-2c9e8b61-6d3f-5a1b-9e42-7b5f3c0d8e21", "2g.20gb", 4, gi_id=3, ci_id=0),
                      MigInstance("MIG-3d0f9c72-7e40-5b2c-af53-8c604d1e9f32", "1g.10gb", 6, gi_id=9, ci_id=0)]),
        GPUDevice(index=1, uuid="GPU-9f3f2b7c-4e55-4c1f-a06b-1d2e3f4a5b6c", model="H100-80GB",
                  product_name="NVIDIA H100 80GB HBM3", memory_mib=81559, mode="full"),
    ])
    assert (nvml.initialised, nvml.shutdowns) == (1, 1)


def test_nvml_mps_gpus_are_named_by_the_caller():
    nvml = RecordedNvml.from_fixture("nvml_dgx_h100_mig.json")
    node = read_nvml_inventory("dgx-1", nvml=nvml, mps_replicas={0: 4, 1: 4})
    assert [(g.mode, g.mps_replicas) for g in node.gpus] == [("mig", 0), ("mps", 4)]  # MIG GPUs cannot run MPS


def test_nvml_unprivileged_host_and_unknown_gpu():
    nvml = RecordedNvml.from_fixture("nvml_a100_unprivileged.json")
    assert read_nvml_inventory("ws", nvml=nvml) == NodeInventory(name="ws", source="nvml", simulated=False, gpus=[
        GPUDevice(index=0, uuid="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", model="A100-40GB",
                  product_name="NVIDIA A100-SXM4-40GB", memory_mib=40536, mode="mig", mig_instances=[
                      MigInstance("MIG-4e1a0d83-8f51-5c3d-b064-9d715e2f0a43", "3g.20gb", None, gi_id=1, ci_id=0),
                      MigInstance("MIG-5f2b1e94-9062-5d4e-c175-ae826f301b54", "3g.20gb", None, gi_id=2, ci_id=0)]),
        GPUDevice(index=1, uuid="GPU-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f90a", model=None,
                  product_name="Tesla T4", memory_mib=15360, mode="full"),
    ])


@pytest.mark.parametrize("fixture", ["nvml_dgx_h100_mig.json", "nvml_a100_unprivileged.json"])
def test_recorder_writes_what_the_replay_reads(fixture):
    recording = json.loads((FIXTURES / fixture).read_text())
    recording.pop("provenance")
    assert record_nvml_responses(RecordedNvml(recording)) == recording


def test_nvml_init_failure_is_inventory_unavailable():
    import pynvml

    class NoDriver(RecordedNvml):
        def nvmlInit(self):
            raise pynvml.NVMLError_DriverNotLoaded()

    with pytest.raises(InventoryUnavailable, match="NVML could not be initialised: Driver Not Loaded"):
        read_nvml_inventory("ws", nvml=NoDriver({"devices": []}))


def test_real_pynvml_without_a_driver_is_inventory_unavailable():
    """Not a double: the real pynvml on this host. Where a driver exists, this says nothing."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        with pytest.raises(InventoryUnavailable):
            read_nvml_inventory("here")
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present; the device check covers this host")


# --------------------------------------------------------------------------- Kubernetes

@pytest.fixture
def kubernetes_nodes():
    return json.loads((FIXTURES / "kubernetes_gpu_nodes.json").read_text())["items"]


def summary(inventory):
    return {
        node.name: [(g.index, g.uuid, g.model, g.mode, g.mps_replicas, g.time_slicing_replicas,
                     tuple((i.profile, i.start) for i in g.mig_instances)) for g in node.gpus]
        for node in inventory.nodes
    }


def test_kubernetes_nodes_read_all_strategies(kubernetes_nodes):
    inventory = nodes_from_kubernetes(kubernetes_nodes)
    balanced = (("3g.40gb", 4), ("2g.20gb", 2), ("1g.10gb", 1), ("1g.10gb", 0))
    ones = tuple(("1g.5gb", s) for s in range(6, -1, -1))
    assert summary(inventory) == {
        "gpu-h100-a": [(i, f"GPU-k8s-gpu-h100-a-{i}", "H100-80GB", "mig", 0, 0, balanced) for i in range(8)],
        "gpu-a100-single": [(i, f"GPU-k8s-gpu-a100-single-{i}", "A100-40GB", "mig", 0, 0, ones) for i in range(8)],
        "gpu-h100-mps": [(i, f"GPU-k8s-gpu-h100-mps-{i}", "H100-80GB", "mps", 4, 0, ()) for i in range(8)],
        "gpu-a30-ts": [(i, f"GPU-k8s-gpu-a30-ts-{i}", "A30", "full", 0, 4, ()) for i in range(4)],
        "gpu-nvl-mixed": [
            (0, "GPU-k8s-gpu-nvl-mixed-0", "H100-NVL-94GB", "mig", 0, 0, tuple(("1g.12gb", s) for s in range(6, -1, -1))),
            (1, "GPU-k8s-gpu-nvl-mixed-1", "H100-NVL-94GB", "mig", 0, 0, (("4g.47gb", 0), ("3g.47gb", 4))),
            (2, "GPU-k8s-gpu-nvl-mixed-2", "H100-NVL-94GB", "full", 0, 0, ()),
            (3, "GPU-k8s-gpu-nvl-mixed-3", "H100-NVL-94GB", "full", 0, 0, ()),
        ],
    }
    assert [(n.source, n.simulated, n.mig_strategy, n.mig_config, n.mig_config_state) for n in inventory.nodes] == [
        ("kubernetes", False, "mixed", "all-balanced", "success"),
        ("kubernetes", False, "single", "all-1g.5gb", "success"),
        ("kubernetes", False, "mixed", "all-disabled", "success"),
        ("kubernetes", False, "mixed", None, None),
        ("kubernetes", False, "mixed", "custom-2-cut", "success"),
    ]


def test_kubernetes_node_counts_match_labels(kubernetes_nodes):
    """What the reconstruction says per node adds up to the labels' per-profile counts."""
    inventory = nodes_from_kubernetes(kubernetes_nodes)
    for node, obj in zip(inventory.nodes, [n for n in kubernetes_nodes if n["metadata"]["name"] != "cpu-1"]):
        labels = obj["metadata"]["labels"]
        counted = {}
        for gpu in node.gpus:
            for instance in gpu.mig_instances:
                counted[instance.profile] = counted.get(instance.profile, 0) + 1
        if labels.get("nvidia.com/mig.strategy") == "mixed":
            assert counted == {key[len("nvidia.com/mig-"):-len(".count")]: int(v) for key, v in labels.items()
                               if key.startswith("nvidia.com/mig-") and key.endswith(".count")}
        else:
            assert sum(counted.values()) == int(labels["nvidia.com/gpu.count"])


def test_kubernetes_impossible_counts_are_refused(kubernetes_nodes):
    node = kubernetes_nodes[0]
    node["metadata"]["labels"]["nvidia.com/mig-7g.80gb.count"] = "1"
    with pytest.raises(InvalidInventory, match="do not fit on 8 H100-80GB GPU"):
        nodes_from_kubernetes([node])


def test_a_cordoned_node_offers_nothing(kubernetes_nodes):
    cordoned = [dict(n, spec={**(n.get("spec") or {}), "unschedulable": True}) if n["metadata"]["name"] == "gpu-h100-a"
                else n for n in kubernetes_nodes]
    assert [n.name for n in nodes_from_kubernetes(cordoned).nodes] == [
        "gpu-a100-single", "gpu-h100-mps", "gpu-a30-ts", "gpu-nvl-mixed"]
    from astrago.spawners.inventory.kube_watch import gpu_signature

    node = next(n for n in kubernetes_nodes if n["metadata"]["name"] == "gpu-h100-a")
    assert gpu_signature(node) != gpu_signature(dict(node, spec={"unschedulable": True}))  # the offer changes
