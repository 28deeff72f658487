"""The Helm chart on a real cluster: `helm lint`, the rendered manifests validated by the API server
(`kubectl apply --dry-run=server`), and a full `helm install` -> run examples/run.yaml against the fake
model server -> `helm uninstall` that must leave nothing behind but the CRDs and retained PVCs.

The install is namespaced (it watches only a namespace of its own, outside the session operator's
paddock-test-* pattern) so that no two operators ever reconcile the same objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Kubectl, cluster_bin_dir, no_cluster
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from paddock_helpers import REPO, Paddock, sandbox_image, wait_for

CHART = REPO / "charts" / "paddock"
FAKE_MODEL = REPO / "hack" / "fake-model.yaml"
RELEASE = "paddock-e2e"
# Bounds for a loaded 2-core machine; each wait fails with diagnostics, never hangs.
ROLLOUT_TIMEOUT_S = 300
RUN_TIMEOUT_S = 300
CLEANUP_TIMEOUT_S = 180
# What a namespace holds by itself (the API server and the controllers create these).
BUILTIN = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


def paddock_image() -> str:
    """The offline-built Paddock image (images/build.sh), or PADDOCK_TEST_PADDOCK_IMAGE for other clusters."""
    override = os.environ.get("PADDOCK_TEST_PADDOCK_IMAGE")
    if override:
        return override
    refs = Path.home() / ".cache" / "paddock" / "images" / "refs.env"
    for line in refs.read_text().splitlines() if refs.is_file() else []:
        if line.startswith("PADDOCK_IMAGE="):
            return line.split("=", 1)[1].strip()
    return "localhost/paddock/paddock:dev"


def split_image(ref: str) -> tuple[str, str]:
    """repository, tag of an image reference (a registry port's colon is not a tag)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repository, tag


class Helm:
    """Runs helm against the test cluster."""

    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def helm(kube: Path) -> Helm:
    pinned = cluster_bin_dir() / "helm"
    binary = str(pinned) if pinned.is_file() else shutil.which("helm")
    if binary is None:
        no_cluster(f"no helm: neither {pinned} nor one on PATH")  # skips, or fails under CI=true
    return Helm(binary, kube)


@pytest.fixture(scope="module")
def kube_version(api_client: Any) -> str:
    """The cluster's version: `helm template` and `helm lint` otherwise assume a default (v1.20 for a helm
    built from source), which the chart's kubeVersion constraint rejects."""
    version: str = client.VersionApi(api_client).get_code().git_version
    return version


def create_namespace(core_v1: Any, name: str) -> None:
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"paddock.dev/test": "true"}))
    )
    # Pods are only admitted once the namespace's default ServiceAccount exists.
    wait_for(f"the default ServiceAccount of {name}", lambda: _exists(core_v1.read_namespaced_service_account, name))


def _exists(read: Any, namespace: str) -> bool:
    try:
        read("default", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_namespace(core_v1: Any, name: str) -> None:
    try:
        core_v1.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def helm_namespaces(core_v1: Any) -> Iterator[tuple[str, str]]:
    """(release namespace, watched namespace), both outside the session operator's paddock-test-*."""
    suffix = uuid.uuid4().hex[:8]
    release_ns, work_ns = f"paddock-helm-{suffix}", f"paddock-helm-{suffix}-work"
    created: list[str] = []
    try:
        for name in (release_ns, work_ns):
            create_namespace(core_v1, name)
            created.append(name)
        yield release_ns, work_ns
    finally:
        for name in created:
            delete_namespace(core_v1, name)


# --- lint and server-side validation --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_helm_lint_is_clean(helm: Helm, kube_version: str, mode: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube_version]
    if mode == "namespaced":
        args += ["--set", "watchNamespaces={team-a,team-b}"]
    out = helm(*args)
    text = out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in text
    assert "[WARNING]" not in text and "[ERROR]" not in text, text


DRY_RUN_MODES: dict[str, list[str]] = {
    "defaults": [],
    "namespaced": ["--set", "watchNamespaces={WORK}"],
    "api-key-and-templated-crds": ["--set", "harness.openai.apiKey=sk-not-a-key", "--set", "crds.templated=true"],
}


@pytest.mark.parametrize("mode", sorted(DRY_RUN_MODES))
def test_rendered_manifests_pass_server_side_validation(
    helm: Helm, kubectl: Kubectl, kube_version: str, crds: None, helm_namespaces: tuple[str, str], mode: str
) -> None:
    release_ns, work_ns = helm_namespaces
    values = [arg.replace("WORK", work_ns) for arg in DRY_RUN_MODES[mode]]
    rendered = helm("template", RELEASE, str(CHART), "-n", release_ns, "--kube-version", kube_version, *values).stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]
    assert "Deployment" in kinds
    # The API server checks every object against its OpenAPI schema (and admission) without storing it.
    # Every template sets its namespace, so no -n (kubectl refuses objects of another namespace with it).
    out = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == len(kinds), out.stdout
    assert all(line.endswith("(server dry run)") for line in lines), out.stdout
    # The CRDs already exist, applied server-side by the `crds` fixture: kubectl notes that they lack
    # its client-side annotation. Any other warning (an unknown or deprecated field) is a failure.
    warnings = [w for w in out.stderr.splitlines() if "Warning" in w and "last-applied-configuration" not in w]
    assert not warnings, out.stderr


# --- install, run, uninstall -----------------------------------------------------------------------


def diagnostics(kubectl: Kubectl, *namespaces: str) -> str:
    """Everything useful when a wait fails: objects, events, and the logs of our pods."""
    parts = []
    for ns in namespaces:
        for args in (
            ("get", "deploy,pods,svc,agentworkspaces,agentruns", "-o", "wide"),
            ("get", "events", "--sort-by=.lastTimestamp"),
        ):
            out = kubectl(*args, "-n", ns, check=False, timeout=60)
            parts.append(f"$ kubectl {' '.join(args)} -n {ns}\n{out.stdout}{out.stderr}")
        for component in ("operator", "harness"):
            out = kubectl(
                "logs", "-n", ns, "-l", f"app.kubernetes.io/component={component}", "--tail=60", check=False, timeout=60
            )
            if out.stdout.strip():
                parts.append(f"--- {component} logs ({ns})\n{out.stdout[-6000:]}")
    return "\n".join(parts)


def wait_available(kubectl: Kubectl, namespace: str, selector: str, timeout: float) -> None:
    proc = kubectl(
        "wait", "deployment", "-n", namespace, "-l", selector,
        "--for=condition=Available", f"--timeout={int(timeout)}s",
        check=False, timeout=timeout + 30,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"deployments {selector} not Available:\n{proc.stderr}\n{diagnostics(kubectl, namespace)}")


def leftovers(api_client: Any, namespaces: list[str]) -> list[str]:
    """Objects left in our namespaces besides what every namespace has, and retained PVCs."""
    # Any: the generated client types every field Optional; these objects come from the API server.
    core: Any = client.CoreV1Api(api_client)
    apps: Any = client.AppsV1Api(api_client)
    rbac: Any = client.RbacAuthorizationV1Api(api_client)
    coordination: Any = client.CoordinationV1Api(api_client)
    networking: Any = client.NetworkingV1Api(api_client)
    custom: Any = client.CustomObjectsApi(api_client)
    found: list[str] = []
    for ns in namespaces:
        listings: list[tuple[str, list[Any]]] = [
            ("Deployment", apps.list_namespaced_deployment(ns).items),
            ("ReplicaSet", apps.list_namespaced_replica_set(ns).items),
            ("Pod", core.list_namespaced_pod(ns).items),
            ("Service", core.list_namespaced_service(ns).items),
            ("ServiceAccount", core.list_namespaced_service_account(ns).items),
            ("Secret", core.list_namespaced_secret(ns).items),
            ("ConfigMap", core.list_namespaced_config_map(ns).items),
            ("Role", rbac.list_namespaced_role(ns).items),
            ("RoleBinding", rbac.list_namespaced_role_binding(ns).items),
            ("Lease", coordination.list_namespaced_lease(ns).items),
            ("NetworkPolicy", networking.list_namespaced_network_policy(ns).items),
        ]
        for kind, items in listings:
            found += [f"{kind} {ns}/{o.metadata.name}" for o in items if (kind, o.metadata.name) not in BUILTIN]
        for pvc in core.list_namespaced_persistent_volume_claim(ns).items:
            if (pvc.metadata.labels or {}).get("paddock.dev/retained") != "true":
                found.append(f"PersistentVolumeClaim {ns}/{pvc.metadata.name} (not retained)")
        for plural in ("agentworkspaces", "agentruns"):
            objs = custom.list_namespaced_custom_object("paddock.dev", "v1alpha1", ns, plural)["items"]
            found += [f"{plural} {ns}/{o['metadata']['name']}" for o in objs]
    selector = f"app.kubernetes.io/instance={RELEASE}"
    found += [f"ClusterRole {o.metadata.name}" for o in rbac.list_cluster_role(label_selector=selector).items]
    found += [
        f"ClusterRoleBinding {o.metadata.name}" for o in rbac.list_cluster_role_binding(label_selector=selector).items
    ]
    return found


def test_install_run_and_uninstall(
    helm: Helm,
    kubectl: Kubectl,
    kube: Path,
    api_client: Any,
    crds: None,
    helm_namespaces: tuple[str, str],
    tmp_path: Path,
) -> None:
    release_ns, work_ns = helm_namespaces
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        timings[step] = round(time.monotonic() - started - sum(timings.values()), 1)

    repository, tag = split_image(paddock_image())
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [work_ns],
        "harness": {"openai": {"apiKey": f"sk-paddock-e2e-{uuid.uuid4().hex[:12]}"}, "resyncSeconds": 10},
        "operator": {"resyncSeconds": 20},
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    installed = False
    try:
        helm("install", RELEASE, str(CHART), "-n", release_ns, "-f", str(values_file), timeout=180)
        installed = True
        wait_available(kubectl, release_ns, f"app.kubernetes.io/instance={RELEASE}", ROLLOUT_TIMEOUT_S)
        lap("install")

        # The bundled scripted model server, in the watched namespace like a user's own endpoint would be.
        fake_model = FAKE_MODEL.read_text().replace("localhost/paddock/paddock:dev", paddock_image())
        kubectl("apply", "-n", work_ns, "-f", "-", input=fake_model)
        wait_available(kubectl, work_ns, "app.kubernetes.io/name=paddock-fake-model", ROLLOUT_TIMEOUT_S)
        # No cluster DNS here: the run names the Service by its ClusterIP.
        core: Any = client.CoreV1Api(api_client)
        cluster_ip = core.read_namespaced_service("paddock-fake-model", work_ns).spec.cluster_ip
        lap("fake model")

        workspace = yaml.safe_load((REPO / "examples" / "workspace.yaml").read_text())
        workspace["spec"]["image"] = sandbox_image()
        # Retained, so that the uninstall check sees the one kind of object meant to outlive everything.
        workspace["spec"]["storage"]["retainOnDelete"] = True
        run = yaml.safe_load((REPO / "examples" / "run.yaml").read_text())
        run["spec"]["model"]["baseURL"] = f"http://{cluster_ip}:8080/v1"
        kubectl("apply", "-n", work_ns, "-f", "-", input=yaml.safe_dump_all([workspace, run]))
        ws_name, run_name = workspace["metadata"]["name"], run["metadata"]["name"]

        paddock = Paddock(api_client, work_ns)

        def finished() -> dict[str, Any] | None:
            found = paddock.run(run_name)
            return found if found and (found.get("status") or {}).get("phase") in {"Succeeded", "Failed"} else None

        try:
            done = wait_for(f"run {run_name} to finish", finished, timeout=RUN_TIMEOUT_S, interval=1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{diagnostics(kubectl, release_ns, work_ns)}") from None
        status = done["status"]
        assert status["phase"] == "Succeeded", f"{yaml.safe_dump(done)}\n{diagnostics(kubectl, release_ns, work_ns)}"
        # The replay checked the sandbox's real output of `python3 hello.py` before giving this answer.
        assert "1, 4, 9, 16, 25, 36, 49, 64, 81, 100" in (status.get("output") or ""), status
        # Least-privilege RBAC that is one verb short shows up as 403s in the logs long before it fails a run.
        for component in ("operator", "harness"):
            logs = kubectl("logs", "-n", release_ns, "-l", f"app.kubernetes.io/component={component}", "--tail=-1")
            denied = [line for line in logs.stdout.splitlines() if "forbidden" in line.lower()]
            assert not denied, f"{component} was refused requests:\n" + "\n".join(denied[:10])
        lap("run")

        # The user's objects go first, while the operator still runs (their children are owned by them).
        paddock.delete("agentruns", run_name)
        paddock.delete("agentworkspaces", ws_name)
        kubectl("delete", "-n", work_ns, "-f", "-", "--wait=false", input=fake_model)
        wait_for(
            "the workspace and the run to go", lambda: not paddock.run(run_name) and not paddock.workspace(ws_name)
        )

        helm("uninstall", RELEASE, "-n", release_ns, "--wait", "--timeout", f"{CLEANUP_TIMEOUT_S}s", timeout=240)
        installed = False
        last: list[str] = []

        def clean() -> bool:
            last[:] = leftovers(api_client, [release_ns, work_ns])
            return not last

        try:
            wait_for("no paddock objects left", clean, timeout=CLEANUP_TIMEOUT_S, interval=2)
        except AssertionError:
            raise AssertionError("left behind after helm uninstall:\n  " + "\n  ".join(last)) from None
        lap("uninstall")

        # What is meant to stay: the CRDs (shared, never deleted by Helm) and the retained workspace volume.
        kubectl("get", "crd", "agentworkspaces.paddock.dev", "agentruns.paddock.dev")
        pvcs = core.list_namespaced_persistent_volume_claim(work_ns).items
        assert [p.metadata.labels.get("paddock.dev/retained") for p in pvcs] == ["true"]
        print(f"helm install/run/uninstall timings (s): {timings}")
    finally:
        if installed:
            helm("uninstall", RELEASE, "-n", release_ns, "--wait", "--timeout", "120s", check=False, timeout=180)
