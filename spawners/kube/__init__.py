"""Cluster mode: GPUKubeSpawner and the pure modules its policy lives in."""
from .spawner import GPUKubeSpawner

__all__ = ["GPUKubeSpawner"]
