"""Exec round-trip latency into a sandbox pod: Paddock's client vs `kubectl exec`.

    .venv/bin/python bench/exec_latency.py [--kubeconfig PATH] [--namespace NS --pod POD] [-n 200]

Without --pod it creates a throwaway namespace with one sandbox pod (image from
PADDOCK_SANDBOX_IMAGE or ~/.cache/paddock/images/refs.env) and deletes it afterwards.
Measured, each `n` times after a short warm-up, sequentially:

* client   - `session.exec("true", shell=False)`: the full SDK path (cd/env/setsid wrapper,
             pods/exec websocket, status-channel exit code)
* raw      - the same websocket transport running bare `true` (protocol cost only)
* kubectl  - `kubectl exec POD -- true` as a subprocess (process start + its own client setup)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents.sandbox import Manifest

from paddock_harness.sandbox import KubeApi, KubeConfigSource, KubernetesSandboxClient
from paddock_harness.sandbox.exec_stream import run_exec

REPO = Path(__file__).resolve().parents[1]


def sandbox_image() -> str:
    ref = os.environ.get("PADDOCK_SANDBOX_IMAGE")
    if ref:
        return ref
    refs = Path(os.environ.get("PADDOCK_CACHE") or Path.home() / ".cache" / "paddock") / "images" / "refs.env"
    for line in refs.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "SANDBOX_IMAGE":
            return value.strip().strip("\"'")
    raise SystemExit(f"no SANDBOX_IMAGE in {refs}")


def default_kubectl() -> str:
    versions: dict[str, str] = {}
    for line in (REPO / "cluster" / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.strip().startswith("#"):
            versions[key.strip()] = value.strip().strip("\"'")
    cache = Path(os.environ.get("PADDOCK_CACHE") or Path.home() / ".cache" / "paddock")
    tag = f"k8s-{versions['K8S_VERSION']}_etcd-{versions['ETCD_VERSION']}_helm-{versions['HELM_VERSION']}"
    path = cache / tag / "bin" / "kubectl"
    return str(path) if path.is_file() else "kubectl"


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank percentile
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def timed(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return samples


class Kubectl:
    def __init__(self, binary: str, kubeconfig: str) -> None:
        self.base = [binary, "--kubeconfig", kubeconfig]

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([*self.base, *args], input=stdin, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout


def make_pod(kubectl: Kubectl, namespace: str) -> str:
    kubectl("create", "namespace", namespace)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "sandbox",
                    "image": sandbox_image(),
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True},
                    "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}],
                }
            ],
            "volumes": [{"name": "ws", "emptyDir": {}}],
        },
    }
    # The namespace's default ServiceAccount appears asynchronously; retry the create briefly.
    for _ in range(50):
        proc = subprocess.run(
            [*kubectl.base, "apply", "-f", "-"], input=json.dumps(pod), capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            break
        time.sleep(0.2)
    kubectl("wait", "-n", namespace, "pod/bench", "--for=condition=Ready", "--timeout=180s")
    return "bench"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=str(REPO / ".cluster" / "kubeconfig"))
    parser.add_argument("--namespace")
    parser.add_argument("--pod")
    parser.add_argument("--kubectl", default=default_kubectl())
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()

    kubectl = Kubectl(args.kubectl, args.kubeconfig)
    created_ns = None
    if args.pod:
        namespace, pod = args.namespace or "default", args.pod
    else:
        created_ns = namespace = f"paddock-bench-{uuid.uuid4().hex[:8]}"
        print(f"creating pod in namespace {namespace} ...", file=sys.stderr)
        pod = await asyncio.to_thread(make_pod, kubectl, namespace)
    api = await KubeApi.connect(KubeConfigSource(kubeconfig=args.kubeconfig))
    client = KubernetesSandboxClient(api=api)
    try:
        session = await client.session_for_pod(namespace=namespace, pod=pod, manifest=Manifest(root="/workspace"))
        await session.start()

        async def via_client() -> None:
            result = await session.exec("true", shell=False)
            assert result.exit_code == 0

        async def via_raw() -> None:
            result = await run_exec(api, namespace=namespace, pod=pod, container=None, argv=["true"], timeout_s=30)
            assert result.exit_code == 0

        async def via_kubectl() -> None:
            proc = await asyncio.create_subprocess_exec(
                *kubectl.base,
                "exec",
                "-n",
                namespace,
                pod,
                "--",
                "true",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert await proc.wait() == 0

        print(f"measuring {args.n} round trips each ...", file=sys.stderr)
        results = {
            "client": summarize(await timed(via_client, args.n)),
            "raw": summarize(await timed(via_raw, args.n)),
            "kubectl": summarize(await timed(via_kubectl, args.n)),
        }
        print(json.dumps(results, indent=2))
        print("\n| path | n | median ms | p95 ms | mean ms |\n|---|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['n']} | {r['median_ms']} | {r['p95_ms']} | {r['mean_ms']} |")
    finally:
        await client.aclose()
        await api.aclose()
        if created_ns:
            cleanup = [*kubectl.base, "delete", "namespace", created_ns, "--wait=false"]
            await asyncio.to_thread(subprocess.run, cleanup, capture_output=True, check=False)


if __name__ == "__main__":
    asyncio.run(main())
