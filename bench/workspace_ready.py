"""Time from `kubectl apply` of an AgentWorkspace to Ready, and the operator's share of it.

    .venv/bin/python bench/workspace_ready.py [--kubeconfig PATH] [-n 10]

Runs the real operator (`python -m paddock_operator`) against the cluster, creates `n` workspaces one
after another in a throwaway namespace and watches, with client-side timestamps:

  t0  create call returns
  t1  the sandbox pod appears           (operator: reconcile, children, pod create)
  t2  the pod reports Ready              (scheduler, kubelet, containerd, readiness probe)
  t3  the workspace reports phase Ready  (operator: notices and writes status)

operator share = (t1 - t0) + (t3 - t2); the rest is Kubernetes starting a pod.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
from paddock_helpers import OperatorProcess, sandbox_image  # noqa: E402


def _watch(stream_fn: Any, namespace: str, events: queue.Queue[tuple[float, str, dict[str, Any]]], kind: str,
           stop: threading.Event) -> None:
    w = watch.Watch()
    for event in w.stream(stream_fn, namespace=namespace, timeout_seconds=600):
        obj = event["object"]
        body = obj if isinstance(obj, dict) else client.ApiClient().sanitize_for_serialization(obj)
        events.put((time.perf_counter(), kind, body))
        if stop.is_set():
            w.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig")))
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    api = config.new_client_from_config(config_file=args.kubeconfig)
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    namespace = f"paddock-bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    subprocess.run(["kubectl", "--kubeconfig", args.kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds")],
                   check=True, capture_output=True)
    log = Path(f"/tmp/{namespace}-operator.log")
    operator = OperatorProcess(Path(args.kubeconfig), [namespace], log)
    operator.start()
    events: queue.Queue[tuple[float, str, dict[str, Any]]] = queue.Queue()
    stop = threading.Event()
    for fn, kind in ((core.list_namespaced_pod, "pod"),):
        threading.Thread(target=_watch, args=(fn, namespace, events, kind, stop), daemon=True).start()

    def ws_stream(namespace: str, **kw: Any) -> Any:
        return custom.list_namespaced_custom_object("paddock.dev", "v1alpha1", namespace, "agentworkspaces", **kw)

    threading.Thread(target=_watch, args=(ws_stream, namespace, events, "ws", stop), daemon=True).start()
    time.sleep(3)  # the operator starts its watches
    totals, shares = [], []
    try:
        for i in range(args.n):
            name = f"bench-{i}"
            body = {"apiVersion": "paddock.dev/v1alpha1", "kind": "AgentWorkspace", "metadata": {"name": name},
                    "spec": {"image": sandbox_image()}}
            t0 = time.perf_counter()
            custom.create_namespaced_custom_object("paddock.dev", "v1alpha1", namespace, "agentworkspaces", body)
            t1 = t2 = t3 = None
            deadline = time.monotonic() + 120
            while t3 is None and time.monotonic() < deadline:
                stamp, kind, obj = events.get(timeout=120)
                meta = obj.get("metadata", {})
                if kind == "pod" and meta.get("name") == f"{name}-sandbox":
                    t1 = t1 or stamp
                    ready = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
                    if ready and ready[0].get("status") == "True":
                        t2 = t2 or stamp
                if kind == "ws" and meta.get("name") == name and (obj.get("status") or {}).get("phase") == "Ready":
                    t3 = stamp
            assert t1 and t2 and t3, f"{name} did not become Ready; see {log}"
            totals.append(t3 - t0)
            shares.append((t1 - t0) + (t3 - t2))
            print(f"{name}: ready {t3 - t0:.2f}s  operator {(t1 - t0) + (t3 - t2):.2f}s "
                  f"(to pod {t1 - t0:.2f}s, pod start {t2 - t1:.2f}s, to status {t3 - t2:.2f}s)", flush=True)
    finally:
        stop.set()
        operator.stop()
        core.delete_namespace(namespace)
    print(f"median apply->Ready {statistics.median(totals):.2f}s over {len(totals)}; "
          f"operator share median {statistics.median(shares):.2f}s "
          f"({100 * statistics.median(shares) / statistics.median(totals):.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
