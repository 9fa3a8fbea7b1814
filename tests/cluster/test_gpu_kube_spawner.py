"""GPUKubeSpawner end to end on its two sides: Kubernetes is FakeKubeAPI (a test double: it
plays the API server, the scheduler and the kubelet), admission is the REAL AstraGo service of
an embedded platform started here (`astrago up` with a static GPU inventory: one H100 cut
3g.40gb x2, one whole H100). KubeSpawner's own code (reflectors, pod creation and deletion)
runs unchanged against the double."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import requests
from jupyterhub.spawner import SpawnException

from astrago.spawners.admission_client import AdmissionClient
from astrago.spawners.kube import GPUKubeSpawner
from waiting import until

NAMESPACE = "astrago"


def allocation(service, allocation_id):
    return requests.get(service.api + f"admissions/{allocation_id}", headers={"Authorization": f"token {service.token}"},
                        timeout=30).json()


def spawner_for(service, user, groups, options, **config):
    account = SimpleNamespace(name=user, id=abs(hash(user)) % 10000, url=f"/user/{user}/",
                              groups=[SimpleNamespace(name=g) for g in groups])
    spawner = GPUKubeSpawner(_mock=True, user=account, namespace=NAMESPACE, service_api_url=service.api,
                             service_api_token=service.token, queue_poll_interval=0.2, start_timeout=30,
                             group_slices={"vision": ["3g.40gb", "gpu-1"], "nlp": ["cpu"]}, **config)
    spawner.user_options = options
    return spawner


async def collect(spawner, into):
    async for event in spawner.progress():
        into.append(event["message"])


async def start(spawner, fake, then=None):
    """Start; once the pod exists, run `then(pod)` (the scheduler's say), then let the kubelet run it."""
    messages = []
    future = spawner.start()
    progress = asyncio.ensure_future(collect(spawner, messages))
    await until(lambda: fake.pod(NAMESPACE, spawner.pod_name) is not None or future.done(), timeout=30)
    if future.done():
        await progress
        return await future, messages
    if then is not None:
        await then(fake.pod(NAMESPACE, spawner.pod_name))
    fake.run_pod(NAMESPACE, spawner.pod_name)
    url = await future
    await asyncio.wait_for(progress, 10)
    return url, messages


async def test_profile_list_is_built_from_the_services_offers_and_the_groups(fake_kube, astrago_service):
    vision = spawner_for(astrago_service, "pat", ["vision"], {})
    assert await vision.profile_list(vision) == [
        {"display_name": "CPU only", "slug": "cpu", "description": "No GPU."},
        {"display_name": "MIG 3g.40gb", "slug": "3g-40gb", "default": True,
         "description": "0.43 GPU units, 40 GB GPU memory, H100-80GB, 2 free now."},
        {"display_name": "1 whole GPU", "slug": "gpu-1", "description": "1.00 GPU units, 80 GB GPU memory, 1 free now."},
    ]
    nlp = spawner_for(astrago_service, "quinn", ["nlp"], {})
    assert [p["slug"] for p in await nlp.profile_list(nlp)] == ["cpu"]


async def test_a_mig_spawn_is_admitted_placed_explained_and_released_on_stop(fake_kube, astrago_service):
    spawner = spawner_for(astrago_service, "alice", ["vision"], {"profile": "3g-40gb"})

    async def scheduler_waits_first(pod):
        fake_kube.add_event(NAMESPACE, pod["metadata"]["name"], "FailedScheduling",
                            "0/4 nodes are available: 1 Insufficient nvidia.com/mig-3g.40gb, 3 node(s) didn't match "
                            "Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not "
                            "helpful for scheduling.")
        fake_kube.add_event(NAMESPACE, pod["metadata"]["name"], "Pulling",
                            'Pulling image "harbor.example.org/astrago/singleuser:0.1.0"', "Normal")
        await until(lambda: len(spawner.events) == 2)

    url, messages = await start(spawner, fake_kube, scheduler_waits_first)
    assert url == "http://10.1.2.3:8888"
    held = spawner.allocation
    assert held["slice"] == "3g.40gb" and held["model"] == "H100-80GB"
    assert messages[:2] == ["Asking AstraGo for 3g.40gb",
                            "Admitted: 3g.40gb (0.43 GPU units); asking Kubernetes for a pod"]
    assert "No free 3g.40gb slice on any node, waiting (4 nodes checked; 1 node: no free 3g.40gb slice; 3 nodes: " \
           "no matching GPU)" in messages
    assert "Pulling image harbor.example.org/astrago/singleuser:0.1.0 (the first start on a node can take a few " \
           "minutes)" in messages

    created = next(kw["body"] for m, kw in fake_kube.calls if m == "create_namespaced_pod")
    container = created["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"
    assert {"name": "ASTRAGO_ALLOCATION_ID", "value": held["id"]} in container["env"]
    assert created["metadata"]["labels"]["astrago.io/allocation"] == held["id"]
    assert allocation(astrago_service, held["id"])["status"] == "admitted"
    assert spawner.get_state()["astrago_allocation"] == held

    await spawner.stop()
    assert fake_kube.pod(NAMESPACE, spawner.pod_name) is None
    after = allocation(astrago_service, held["id"])
    assert (after["status"], after["reason"]) == ("released", "server stopped")
    assert spawner.allocation is None


async def test_a_full_slice_waits_in_the_queue_with_its_position(fake_kube, astrago_service):
    service = AdmissionClient(astrago_service.api, astrago_service.token)
    others = [await service.admit(owner_kind="workspace", owner_id=f"other{i}/", user=f"other{i}", groups=[],
                                  slice_name="3g.40gb") for i in range(2)]
    assert [o["status"] for o in others] == ["admitted", "admitted"]
    spawner = spawner_for(astrago_service, "bob", ["vision"], {"slice": "3g.40gb"})

    async def release_one_later():
        await until(lambda: any(n["message"].startswith("Queued") for n in getattr(spawner, "_notes", [])), timeout=15)
        await service.release(others[0]["id"], "done")

    releasing = asyncio.ensure_future(release_one_later())
    url, messages = await start(spawner, fake_kube)
    await releasing
    queued = [m for m in messages if m.startswith("Queued")]
    assert queued and queued[0].startswith("Queued: position 1 of 1 for 3g.40gb (waiting: no free 3g.40gb")
    assert messages.index(queued[0]) < messages.index("Admitted: 3g.40gb (0.43 GPU units); asking Kubernetes for a pod")
    await spawner.stop()
    await service.release(others[1]["id"], "done")


@pytest.mark.parametrize("groups,options,reason,message", [
    (["nlp"], {"slice": "gpu-1"}, "forbidden", "Your groups (nlp) may not use gpu-1."),
    (["vision"], {"slice": "mps-25"}, "capacity-unavailable",
     "'mps-25' is not offered in this cluster; you may choose: cpu, 3g.40gb, gpu-1."),
    (["vision"], {"slice": "3g.40gb", "image": "evil/image"}, "invalid-request",
     'Unknown spawn options: image. Send {"slice": "<slice name>"} or {"profile": "<profile slug>"}.'),
])
async def test_rest_spawns_are_rechecked_on_the_server(fake_kube, astrago_service, groups, options, reason, message):
    user = f"rest{abs(hash(str(options))) % 1000}"
    spawner = spawner_for(astrago_service, user, groups, options)
    with pytest.raises(SpawnException) as refused:
        await spawner.start()
    assert (refused.value.reason, refused.value.message) == (reason, message)
    assert not [c for c in fake_kube.calls if c[0] == "create_namespaced_pod"]
    listed = requests.get(astrago_service.api + "allocations", params={"user": user},
                          headers={"Authorization": f"token {astrago_service.token}"}, timeout=30)
    assert listed.status_code == 200 and listed.json()["allocations"] == []


async def test_a_pod_that_disappears_releases_its_allocation(fake_kube, astrago_service):
    spawner = spawner_for(astrago_service, "carol", ["vision"], {"slice": "gpu-1"})
    await start(spawner, fake_kube)
    held = spawner.allocation
    assert allocation(astrago_service, held["id"])["status"] == "admitted"
    await fake_kube.delete_namespaced_pod(spawner.pod_name, NAMESPACE)  # evicted, deleted by someone
    await until(lambda: f"{NAMESPACE}/{spawner.pod_name}" not in spawner.pod_reflector.pods)
    assert await spawner.poll() == 1
    after = allocation(astrago_service, held["id"])
    assert (after["status"], after["reason"]) == ("released", "the server is gone")


async def test_a_service_that_cannot_be_reached_is_said_plainly(fake_kube):
    service = SimpleNamespace(api="http://127.0.0.1:9/services/astrago/api/", token="x")
    spawner = spawner_for(service, "dan", [], {"slice": "cpu"})
    with pytest.raises(SpawnException) as refused:
        await spawner.start()
    assert refused.value.reason == "service-unavailable"
    assert refused.value.message.startswith("AstraGo cannot check your choice right now: "
                                                       "The AstraGo service is not reachable")
    assert await spawner.profile_list(spawner) == []
