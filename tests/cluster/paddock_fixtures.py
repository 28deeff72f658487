"""Fixtures shared by Paddock's cluster tests. Import them into a test module to use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paddock_helpers import REPO, OperatorProcess, Paddock

# The session operator reconciles every test namespace (see the `namespace` fixture's naming); tests that
# manage operators themselves use namespaces outside this pattern.
TEST_NAMESPACES = "paddock-test-*"


@pytest.fixture(scope="session")
def crds(kubectl: Any) -> None:
    """The generated CRDs, applied server-side, Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for name in ("agentworkspaces.paddock.dev", "agentruns.paddock.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


@pytest.fixture(scope="session")
def paddock_operator(kube: Path, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One real operator process for the session, watching the test namespaces."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(kube, [TEST_NAMESPACES], log_path)
    operator.start()
    yield operator
    operator.stop()
    assert operator.process is not None
    # A crash during the session would have shown as failing tests; a clean SIGTERM exit proves shutdown.
    print(f"operator log: {log_path}")


@pytest.fixture
def paddock(api_client: Any, namespace: str, paddock_operator: OperatorProcess) -> Paddock:
    """Our custom resources in this test's namespace, with the operator running."""
    assert paddock_operator.process is not None
    assert paddock_operator.process.poll() is None, f"the operator exited:\n{paddock_operator.logs()[-4000:]}"
    return Paddock(api_client, namespace)
