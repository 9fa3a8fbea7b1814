"""Settings of the jobs area (traitlets, `c.JobsConfig.<name>` in the service's config).

Which executor runs jobs is `c.JobsArea.executor_class` (astrago.hub.jobs.area); the settings
of the two executors AstraGo ships are here, so the Helm chart and `astrago up` set them in one
section. Environment variables reach these traits only through astrago.hub.service.environment.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default
from traitlets.config import Configurable


def _service_setting(configurable: Configurable, name: str):
    """`name` of the nearest traitlets parent that has it (the area's parent is the service)."""
    owner = configurable.parent
    while owner is not None:
        if hasattr(owner, name):
            return getattr(owner, name)
        owner = getattr(owner, "parent", None)
    return None


class JobsConfig(Configurable):
    """How jobs run: as whom, with which limits, and how often the scheduler looks."""

    data_dir = Unicode(config=True, help="Where job logs, exit statuses and launch specs are kept. "
                       "Default: <service data dir>/jobs.")

    @default("data_dir")
    def _default_data_dir(self):
        return str(Path(_service_setting(self, "data_dir") or Path.cwd()) / "jobs")

    cycle_interval = Float(2.0, config=True,
                           help="Seconds between scheduling cycles when nothing wakes the scheduler sooner "
                           "(a submission, a cancellation or a finished job wake it at once).")

    poll_interval = Float(0.5, config=True, help="Seconds between checks of running jobs' processes.")

    cancel_grace_seconds = Float(10.0, config=True,
                                 help="After SIGTERM, how long a cancelled or timed-out job may take to exit "
                                 "before it is killed (SIGKILL).")

    default_cpu = Float(1.0, config=True, help="CPU cores a job asks for when its spec does not say.")
    default_memory_gib = Float(4.0, config=True, help="Memory (GiB) a job asks for when its spec does not say.")
    max_replicas = Integer(8, config=True,
                           help="The most replicas one job of a user may have (`replicas`, each on its own slice, "
                           "admitted all or none); a spec asking for more is refused. The user's quota bounds "
                           "what they hold as well. At most 65.")
    max_replicas_by_user = Dict(value_trait=Integer(), config=True,
                                help="User name -> their own `max_replicas`, for users who may ask for more (or "
                                "fewer) replicas than everyone else.")

    def max_replicas_for(self, user: str) -> int:
        """The most replicas `user`'s job may have."""
        return int(self.max_replicas_by_user.get(user, self.max_replicas))

    max_runtime_limit_hours = Float(7 * 24.0, config=True,
                                    help="The longest max_runtime a job may ask for; also the max_runtime of a job "
                                    "that does not say (0: no limit).")

    # -- local executor ---------------------------------------------------

    local_cpu_capacity = Float(0.0, config=True,
                               help="Cores that running local jobs may hold together (their `cpu`); a job that "
                               "does not fit waits QUEUED. 0: twice this machine's cores.")
    local_memory_capacity_gib = Float(0.0, config=True,
                                      help="Memory (GiB) that running local jobs may hold together; 0: this "
                                      "machine's memory.")

    def local_capacity(self) -> tuple[float, float]:
        """(cores, GiB) that running local jobs may hold together."""
        cores = self.local_cpu_capacity or 2.0 * (os.cpu_count() or 1)
        gib = self.local_memory_capacity_gib
        if not gib:
            try:
                gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
            except (ValueError, OSError):
                gib = 16.0
        return float(cores), float(gib)

    user_env_prefix = Unicode(sys.prefix, config=True,
                              help="Python environment that runs jobs (the users' environment, with papermill and "
                              "ipykernel; readable by every account); $ASTRAGO_USER_ENV sets it. Default: the "
                              "service's own environment.")

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of users' system accounts (as LocalGPUSpawner.system_user_prefix).")
    home_template = Unicode("/home/{system_user}", config=True,
                            help="A user's storage root and the default working directory of their jobs; "
                            "{system_user} is the account, {username} the hub name.")
    create_accounts = Unicode("auto", config=True,
                              help="Create a user's system account on their first job when it is missing: "
                              "'auto' (when running as root), 'yes' or 'no'.")
    cgroup_root = Unicode(config=True,
                          help="A cgroup v2 directory the service may create job cgroups under (cpu.max, "
                          "memory.max, cgroup.kill). Default: the first writable cgroup v2 mount with the cpu and "
                          "memory controllers, else none (limits are then not enforced; see docs/jobs.md).")
    enforce_limits = Bool(True, config=True, help="Put each local job in its own cgroup with its cpu and memory "
                          "limits when a delegated cgroup v2 hierarchy is available.")
    mps_pipe_dir = Unicode("/tmp/nvidia-mps", config=True, help="CUDA_MPS_PIPE_DIRECTORY of the MPS daemon.")
    mps_log_dir = Unicode("/var/log/nvidia-mps", config=True, help="CUDA_MPS_LOG_DIRECTORY of the MPS daemon.")
    extra_env = Dict(config=True, help="Extra environment variables for every job.")

    # -- Kubernetes executor ----------------------------------------------

    namespace = Unicode(config=True, help="Namespace jobs are created in. Default: the service's own namespace "
                        "(from the service account), else 'default'.")

    @default("namespace")
    def _default_namespace(self):
        path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return path.read_text().strip() if path.exists() else "default"

    image = Unicode("astrago/singleuser:latest", config=True,
                    help="Image of a job whose spec names none (the single-user image, with the AstraGo runner).")
    mig_strategy = Enum(["mixed", "single"], default_value="mixed", config=True,
                        help="The NVIDIA device plugin's MIG strategy in the cluster.")
    service_account = Unicode("", config=True, help="Service account of job pods ('' : the namespace default).")
    run_as_uid = Integer(1000, config=True, help="UID job containers run as (never 0).")
    run_as_gid = Integer(100, config=True, help="GID job containers run as.")
    home_claim_template = Unicode("claim-{username}", config=True,
                                  help="The user's storage PersistentVolumeClaim, mounted at home_mount_path "
                                  "(z2jh's default naming). Empty: no volume.")
    home_mount_path = Unicode("/home/jovyan", config=True, help="Where the user's storage is mounted in job pods.")
    slug_scheme = Enum(["safe", "escape"], default_value="safe", config=True,
                       help="How KubeSpawner turned user names into the names of their volumes: the hub's "
                       "KubeSpawner.slug_scheme ('safe' since KubeSpawner 7, 'escape' before), so a job pod "
                       "mounts the claim the user's server made. hub/cluster.py passes it as "
                       "$ASTRAGO_SLUG_SCHEME.")
    ttl_seconds_after_finished = Integer(24 * 3600, config=True,
                                         help="Kubernetes removes a finished Job (and its pods) after this long.")
    node_selector = Dict(config=True, help="Extra node selector for job pods.")
    extra_labels = Dict(config=True, help="Extra labels on job objects and pods.")
    image_pull_secrets = List(Unicode(), config=True, help="Names of image pull secrets for job pods.")
    mpi_launcher_command = List(Unicode(), ["mpirun", "-np", "{replicas}"], config=True,
                                help="How an MPIJob's launcher starts the job's processes: this, then the job's "
                                "own command (or python and its script), run by the AstraGo runner; {replicas} is "
                                "the job's replica count. The MPI Operator gives mpirun the hostfile "
                                "(OMPI_MCA_orte_default_hostfile). Empty: the launcher runs the job as rank 0 "
                                "itself.")
    mpi_worker_command = List(Unicode(), config=True,
                              help="The command of an MPIJob's workers. Empty: the MPI Operator's default, "
                              "`/usr/sbin/sshd -De` (the image must have sshd that runs as run_as_uid).")
