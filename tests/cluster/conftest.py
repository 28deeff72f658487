"""Fixtures for tests that need a real Kubernetes cluster.

The cluster is the one named by PADDOCK_TEST_KUBECONFIG when set (kind or any other cluster),
else the local cluster from cluster/up.sh, started on demand. When no cluster can be had the
tests skip with the reason, except under CI=true where that is a failure: CI must never go
green by skipping the cluster tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "cluster"
LOCAL_KUBECONFIG = REPO / ".cluster" / "kubeconfig"
# A cold start builds Kubernetes from source: allow for it.
UP_TIMEOUT_S = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/cluster with the `cluster` marker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)


def no_cluster(reason: str) -> NoReturn:
    """Skip, or fail under CI=true, when no cluster is available."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"no Kubernetes cluster for the cluster tests (CI=true): {reason}", pytrace=False)
    pytest.skip(f"no Kubernetes cluster: {reason}")


def read_versions() -> dict[str, str]:
    """The KEY=VALUE pins of cluster/versions.env."""
    values: dict[str, str] = {}
    for line in (CLUSTER_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def cluster_bin_dir() -> Path:
    """Where cluster/build.sh puts kubectl and friends (mirrors cluster/lib/common.sh)."""
    v = read_versions()
    cache = os.environ.get("PADDOCK_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paddock"
    )
    return Path(cache) / f"k8s-{v['K8S_VERSION']}_etcd-{v['ETCD_VERSION']}_helm-{v['HELM_VERSION']}" / "bin"


def kubectl_binary() -> str:
    """The pinned kubectl when built, else whatever kubectl is on PATH (e.g. for kind)."""
    pinned = cluster_bin_dir() / "kubectl"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("kubectl")
    if found is None:
        no_cluster(f"no kubectl: neither {pinned} nor one on PATH")
    return found


def api_reachable(kubeconfig: Path) -> str | None:
    """None when the API server behind kubeconfig answers an authenticated request, else why not."""
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            # An authenticated request: proves both reachability and working credentials.
            client.CoreV1Api(api).list_namespace(limit=1, _request_timeout=10)
        finally:
            api.close()
    except Exception as exc:  # any failure means "not usable"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None


def start_local_cluster() -> None:
    """Runs cluster/up.sh (a quick no-op when the cluster is already up)."""
    if os.geteuid() != 0:
        no_cluster(f"{LOCAL_KUBECONFIG} is not usable and cluster/up.sh needs root")
    try:
        proc = subprocess.run(
            ["bash", str(CLUSTER_DIR / "up.sh")],
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        no_cluster(f"cluster/up.sh did not finish within {UP_TIMEOUT_S} s")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        no_cluster(f"cluster/up.sh failed (exit {proc.returncode}):\n{tail}")


@pytest.fixture(scope="session")
def kube() -> Path:
    """Path of a kubeconfig for a working cluster."""
    override = os.environ.get("PADDOCK_TEST_KUBECONFIG")
    if override:
        path = Path(override)
        if not path.is_file():
            no_cluster(f"PADDOCK_TEST_KUBECONFIG={override} does not exist")
        why = api_reachable(path)
        if why is not None:
            no_cluster(f"cluster of PADDOCK_TEST_KUBECONFIG={override} is not reachable: {why}")
        return path
    if not LOCAL_KUBECONFIG.is_file() or api_reachable(LOCAL_KUBECONFIG) is not None:
        start_local_cluster()
    why = api_reachable(LOCAL_KUBECONFIG)
    if why is not None:
        no_cluster(f"local cluster is not reachable after cluster/up.sh: {why}")
    return LOCAL_KUBECONFIG


@pytest.fixture(scope="session")
def api_client(kube: Path) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the cluster."""
    api = config.new_client_from_config(config_file=str(kube))
    yield api
    api.close()


@pytest.fixture(scope="session")
def core_v1(api_client: Any) -> Any:
    """kubernetes.client.CoreV1Api for the cluster."""
    return client.CoreV1Api(api_client)


class Kubectl:
    """Runs kubectl against the test cluster: `kubectl("get", "pods", "-n", ns)`."""

    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd: Sequence[str] = [self.binary, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc


@pytest.fixture(scope="session")
def kubectl(kube: Path) -> Kubectl:
    """Runs the cluster's kubectl with the test kubeconfig."""
    return Kubectl(kubectl_binary(), kube)


@pytest.fixture
def namespace(core_v1: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for it to vanish)."""
    name = f"paddock-test-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"paddock.dev/test": "true"}))
    )
    try:
        # Pods are only admitted once the namespace's default ServiceAccount exists.
        deadline = time.monotonic() + 60
        while True:
            try:
                core_v1.read_namespaced_service_account("default", name)
                break
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield name
    finally:
        try:
            core_v1.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise


# Paddock's own fixtures (CRDs installed, the operator running, typed access to our resources).
from paddock_fixtures import crds, paddock, paddock_operator  # noqa: E402, F401
