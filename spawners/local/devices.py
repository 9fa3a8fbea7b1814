"""The environment a placement gives a user's process (pure)."""
from __future__ import annotations


def env_for_placement(slice_name: str, placement: dict, *, mps_pipe_dir: str = "",
                      mps_log_dir: str = "") -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES with the placed GPU or MIG UUIDs (empty: no GPU), and the MPS
    variables for an MPS share. `placement` is the service's admission placement."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(placement.get("visible_devices") or []), "ASTRAGO_SLICE": slice_name}
    percent = placement.get("mps_percent")
    if percent:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(percent)
        if mps_pipe_dir:
            env["CUDA_MPS_PIPE_DIRECTORY"] = mps_pipe_dir
        if mps_log_dir:
            env["CUDA_MPS_LOG_DIRECTORY"] = mps_log_dir
        limit = placement.get("mps_memory_limit_mib")
        if limit:
            # the process sees one device, ordinal 0
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={int(limit)}M"
    return env
