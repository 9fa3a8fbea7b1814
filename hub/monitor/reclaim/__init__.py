"""Idle-GPU reclaim: pure rules (`rules`), their state in the database (`store`) and the actions
(`actions`: audit, notify, stop the server through JupyterHub's API, release the allocation)."""
