"""The fleet area: the GPU inventory as the service sees it, and MIG re-cutting (cluster mode)."""
