"""How many runs one harness drives at once before a turn slows down 2x.

    .venv/bin/python bench/concurrent_runs.py [--kubeconfig PATH] [--levels 1,2,4,8,16] [--turns 5]

Starts the real operator and ONE real harness (`python -m paddock_harness`) against the cluster, the fake
model in this process on 127.0.0.1 (the harness runs on the host), and one AgentWorkspace per concurrent
run (runs in one workspace are queued by design), with small resource requests. For each level N it
creates N runs at once; each run makes --turns model turns that each call `exec_command` (a real pods/exec
into its sandbox), then a final answer. Every model answer is delayed by --delay seconds of "think time".

A turn's latency is the time between consecutive model requests of one run, as the fake server records
them: model think time + the harness's own work (stream handling, checkpoint save, status, transcript)
+ the tool call through the Kubernetes API + the checkpoint after it. The median over all turns of all runs
of a level is compared with N=1. Everything it creates lives in a throwaway namespace, deleted at the end.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
from harness_helpers import DEFAULT_KEY, HarnessProcess  # noqa: E402
from paddock_helpers import GROUP, VERSION, OperatorProcess, sandbox_image  # noqa: E402

from paddock_harness.driver import protocol  # noqa: E402
from paddock_harness.fakemodel import FakeModelThread  # noqa: E402

TERMINAL = {"Succeeded", "Failed", "Cancelled"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def script(turns: int, delay: float) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {
            "output": [{"type": "exec_command", "cmd": f"echo step {i} >> steps.txt", "callId": f"c{i}"}],
            "usage": {"inputTokens": 500, "outputTokens": 20},
            "delaySeconds": delay,
        }
        for i in range(turns)
    ]
    steps.append(
        {
            "output": [{"type": "message", "phase": "final_answer", "text": "done"}],
            "usage": {"inputTokens": 500, "outputTokens": 5},
            "delaySeconds": delay,
        }
    )
    return {"turns": steps}


class Bench:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.namespace = namespace

    def create(self, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def phases(self, plural: str) -> dict[str, str | None]:
        listed = cast(dict[str, Any], self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural))
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in listed["items"]}

    def wait(self, what: str, plural: str, names: list[str], done: set[str], timeout: float) -> dict[str, str | None]:
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while True:
            phases = self.phases(plural)
            mine = {n: phases.get(n) for n in names}
            finished = sum(1 for p in mine.values() if p in done)
            if finished == len(names):
                return mine
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}: {mine}")
            if time.monotonic() - last_report > 15:
                log(f"  waiting for {what}: {finished}/{len(names)}")
                last_report = time.monotonic()
            time.sleep(0.5)


def turn_latencies(server: FakeModelThread, namespace: str, runs: list[str]) -> list[float]:
    """Seconds between consecutive answered model requests of each run."""
    times: dict[str, list[float]] = defaultdict(list)
    for request in server.model_requests():
        times[request.headers.get(protocol.RUN_HEADER, "")].append(request.time)
    gaps: list[float] = []
    for run in runs:
        stamps = sorted(times[f"{namespace}/{run}"])
        gaps += [b - a for a, b in itertools.pairwise(stamps)]
    return gaps


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig")))
    parser.add_argument("--levels", default="1,2,4,8,16", help="numbers of concurrent runs, comma-separated")
    parser.add_argument("--turns", type=int, default=8, help="tool-calling model turns per run (plus the answer)")
    parser.add_argument("--delay", type=float, default=0.2, help="fake model think time per turn, seconds")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    widest = max(levels)
    started = time.monotonic()

    namespace = f"paddock-bench-{uuid.uuid4().hex[:6]}"
    bench = Bench(args.kubeconfig, namespace)
    bench.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    kubeconfig = Path(args.kubeconfig)
    operator = OperatorProcess(kubeconfig, [namespace], Path(f"/tmp/{namespace}-operator.log"))
    harness = HarnessProcess(
        kubeconfig,
        namespace,
        Path(f"/tmp/{namespace}-harness.log"),
        "--max-concurrent-runs",
        str(widest),
        api_key=DEFAULT_KEY,
    )
    server = FakeModelThread(script(args.turns, args.delay), api_key=DEFAULT_KEY)
    results: list[tuple[int, int, float, float, float, float, float]] = []
    try:
        server.start()
        operator.start()
        harness.start()
        log(f"namespace {namespace}: {widest} workspaces (requests cpu 10m, memory 32Mi)")
        workspaces = [f"ws-{i}" for i in range(widest)]
        for name in workspaces:
            bench.create(
                "agentworkspaces",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "AgentWorkspace",
                    "metadata": {"name": name},
                    "spec": {
                        "image": sandbox_image(),
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        "storage": {"size": "64Mi"},
                    },
                },
            )
        bench.wait("workspaces Ready", "agentworkspaces", workspaces, {"Ready"}, timeout=300)
        harness.wait_ready()
        log(f"ready after {time.monotonic() - started:.0f}s; {args.turns + 1} model turns per run, {args.delay}s think")

        for level in levels:
            server.reset()
            runs = [f"n{level}-{i}" for i in range(level)]
            assert harness.process is not None
            cpu0, t0 = cpu_seconds(harness.process.pid), time.monotonic()
            for run, workspace in zip(runs, workspaces, strict=False):
                bench.create(
                    "agentruns",
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "AgentRun",
                        "metadata": {"name": run},
                        "spec": {
                            "workspaceRef": {"name": workspace},
                            "prompt": "count steps",
                            "model": {"name": "bench", "baseURL": server.base_url},
                        },
                    },
                )
            phases = bench.wait(f"{level} run(s)", "agentruns", runs, TERMINAL, timeout=300)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(harness.process.pid) - cpu0
            failed = {n: p for n, p in phases.items() if p != "Succeeded"}
            if failed or server.failures:
                raise SystemExit(f"runs did not all succeed: {failed} {server.failures[:3]}")
            gaps = sorted(turn_latencies(server, namespace, runs))
            p95 = gaps[max(0, int(0.95 * len(gaps) + 0.999) - 1)]
            results.append((level, len(gaps), statistics.median(gaps), p95, max(gaps), wall, cpu))
            log(
                f"N={level}: median turn {statistics.median(gaps):.2f}s, p95 {p95:.2f}s, "
                f"wall {wall:.1f}s, harness cpu {cpu:.1f}s"
            )
            for run in runs:
                bench.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "agentruns", run)
    finally:
        harness.stop()
        operator.stop()
        server.stop()
        try:
            bench.core.delete_namespace(namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    base = results[0][2]
    print()
    print(f"one harness, fake model think time {args.delay}s/turn, {args.turns} exec turns + answer per run")
    print("turn = time between consecutive model requests of a run; cpu = the harness process's CPU time")
    header = f"{'N':>4} {'turns':>6} {'median s':>9} {'p95 s':>7} {'max s':>7} {'x N=1':>6} {'wall s':>7}"
    print(f"{header} {'cpu s':>6} {'cpu/turn s':>10} {'turns/s':>8}")
    slow_at: int | None = None
    for level, count, median, p95, worst, wall, cpu in results:
        ratio = median / base
        if slow_at is None and ratio >= 2:
            slow_at = level
        model_turns = count + level  # the gaps plus each run's first turn
        row = f"{level:>4} {count:>6} {median:>9.2f} {p95:>7.2f} {worst:>7.2f} {ratio:>6.2f} {wall:>7.1f}"
        print(f"{row} {cpu:>6.1f} {cpu / model_turns:>10.3f} {model_turns / wall:>8.2f}")
    print()
    if slow_at is None:
        print(f"a turn did not slow by 2x up to N={max(levels)}")
    else:
        print(f"a turn is 2x slower than with one run at N={slow_at}")
    print(f"total {time.monotonic() - started:.0f}s; logs /tmp/{namespace}-*.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
