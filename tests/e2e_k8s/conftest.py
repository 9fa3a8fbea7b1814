"""tests/e2e_k8s runs against a real cluster, and only when KUBECONFIG is set.

Without KUBECONFIG nothing here is collected: the suite neither runs nor shows as skipped
(a skip would count as "not run" under CI=true). See docs/deploy-kubernetes.md.
"""
import os

if not os.environ.get("KUBECONFIG"):
    collect_ignore_glob = ["test_*.py"]
