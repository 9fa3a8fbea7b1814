"""The single-machine spawner: real per-user processes on this host's GPUs."""
from .spawner import LocalGPUSpawner

__all__ = ["LocalGPUSpawner"]
