"""plan_workspace: observed children and a fixed clock in, children/pod action/status out."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paddock_operator import naming
from paddock_operator.api.workspace import AgentWorkspace, AgentWorkspaceSpec
from paddock_operator.builders.common import OwnerRef
from paddock_operator.builders.workspace import build_network_policy, build_pod, build_pvc
from paddock_operator.conditions import Reason
from paddock_operator.reconcile.timeutil import format_time
from paddock_operator.reconcile.workspace import Observed, PodAction, WorkspacePlan, plan_workspace
from paddock_operator.settings import OperatorSettings

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = OperatorSettings(identity="unit-test")
STATUS_KEYS = ("phase", "conditions", "podName", "pvcName", "observedGeneration", "message")


def ago(seconds: float) -> str:
    """RFC 3339, with a fraction only when `seconds` has one."""
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def workspace(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    *,
    generation: int = 1,
    deleting: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentWorkspace",
        "metadata": {"name": "ws", "namespace": "team-a", "uid": "uid-ws", "generation": generation},
        "spec": {"image": "sandbox:1", **(spec or {})},
    }
    if status is not None:
        body["status"] = status
    if deleting:
        body["metadata"]["deletionTimestamp"] = ago(5)
    AgentWorkspace.model_validate(body)  # only bodies the apiserver could hold
    return body


def pod_ready_status(status: str, since: str, reason: str = Reason.POD_RUNNING) -> dict[str, Any]:
    """A previous workspace status whose PodReady condition is `status` since `since`."""
    return {
        "phase": "Ready" if status == "True" else "Pending",
        "conditions": [
            {"type": "PodReady", "status": status, "reason": reason, "message": "", "lastTransitionTime": since}
        ],
    }


def pod(
    body: dict[str, Any],
    *,
    phase: str = "Running",
    ready: bool = True,
    container_state: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    """The pod the apiserver would return for the pod this workspace's spec builds."""
    built = build_pod(OwnerRef.of(body), AgentWorkspaceSpec.model_validate(body["spec"]), SETTINGS)
    built["metadata"]["uid"] = "uid-pod"
    if conditions is None:
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ]
    built["status"] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [
            {"name": "sandbox", "image": body["spec"]["image"], "state": container_state or {"running": {}}}
        ],
        **status,
    }
    return built


def pvc(phase: str | None = "Bound") -> dict[str, Any]:
    claim = build_pvc(OwnerRef.of(workspace()), AgentWorkspaceSpec(image="x"))
    if phase is not None:
        claim["status"] = {"phase": phase}
    return claim


NETPOL = build_network_policy(OwnerRef.of(workspace()), AgentWorkspaceSpec(image="x"), SETTINGS)


def healthy(body: dict[str, Any], **changes: Any) -> Observed:
    observed = {"pvc": pvc(), "pod": pod(body), "network_policy": NETPOL, **changes}
    return Observed(**observed)


def plan(body: dict[str, Any], observed: Observed, now: datetime = NOW) -> WorkspacePlan:
    return plan_workspace(body, observed, now, SETTINGS)


def condition(result: WorkspacePlan, type_: str) -> dict[str, Any]:
    matches = [c for c in result.status["conditions"] if c["type"] == type_]
    assert len(matches) == 1, result.status["conditions"]
    return dict(matches[0])


def test_fresh_workspace_creates_everything() -> None:
    body = workspace()
    result = plan(body, Observed())
    assert [c["kind"] for c in result.apply] == [
        "ServiceAccount",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
    ]
    for child in result.apply:
        assert child["metadata"]["namespace"] == "team-a"
        assert child["metadata"]["ownerReferences"][0]["uid"] == "uid-ws"
    assert result.pod_action is PodAction.CREATE
    assert result.pod == build_pod(OwnerRef.of(body), AgentWorkspaceSpec(image="sandbox:1"), SETTINGS)
    assert result.delete_workspace is False
    status = result.status
    assert status["phase"] == "Pending"
    assert status["podName"] == "ws-sandbox"
    assert status["pvcName"] == "ws-workspace"
    assert status["observedGeneration"] == 1
    assert status["message"] == "creating the volume claim"
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("StorageReady", "False", "Creating"),
        ("NetworkPolicyReady", "False", "Creating"),
        ("PodReady", "False", "Creating"),
        ("Ready", "False", "Creating"),
    ]
    for c in status["conditions"]:
        assert c["lastTransitionTime"] == "2025-03-01T12:00:00Z"
        assert c["observedGeneration"] == 1


def test_everything_ready_is_ready() -> None:
    body = workspace()
    result = plan(body, healthy(body))
    assert result.pod_action is PodAction.NONE
    assert result.pod is None
    assert result.status["phase"] == "Ready"
    assert result.status["message"] is None
    assert {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]} == {
        "StorageReady": ("True", "Bound"),
        "NetworkPolicyReady": ("True", "Applied"),
        "PodReady": ("True", "PodRunning"),
        "Ready": ("True", "Ready"),
    }
    assert result.requeue_after is None
    assert result.events == []


@pytest.mark.parametrize(
    ("pod_kwargs", "phase", "reason", "message_parts"),
    [
        pytest.param(
            {
                "ready": False,
                "container_state": {
                    "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "sandbox:1"'}
                },
            },
            "Failed",
            Reason.IMAGE_PULL_FAILED,
            ["image 'sandbox:1' cannot be pulled", "Back-off pulling image"],
            id="image-pull-backoff",
        ),
        pytest.param(
            {"ready": False, "container_state": {"waiting": {"reason": "ErrImagePull"}}},
            "Failed",
            Reason.IMAGE_PULL_FAILED,
            ["cannot be pulled: ErrImagePull"],
            id="err-image-pull-no-message",
        ),
        pytest.param(
            {"ready": False, "container_state": {"waiting": {"reason": "InvalidImageName", "message": "bad ref"}}},
            "Failed",
            Reason.IMAGE_PULL_FAILED,
            ["bad ref"],
            id="invalid-image-name",
        ),
        pytest.param(
            {"ready": False, "container_state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}},
            "Failed",
            Reason.CONTAINER_FAILING,
            ["keeps failing", "back-off"],
            id="crash-loop",
        ),
        pytest.param(
            {"ready": False, "container_state": {"waiting": {"reason": "CreateContainerConfigError"}}},
            "Failed",
            Reason.CONTAINER_FAILING,
            ["CreateContainerConfigError"],
            id="config-error",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient memory.",
                    }
                ],
                "container_state": {"waiting": {"reason": "ContainerCreating"}},
            },
            "Pending",
            Reason.UNSCHEDULABLE,
            ["Insufficient memory"],
            id="unschedulable",
        ),
        pytest.param(
            {"phase": "Pending", "ready": False, "container_state": {"waiting": {"reason": "ContainerCreating"}}},
            "Pending",
            Reason.POD_STARTING,
            ["starting"],
            id="container-creating",
        ),
        pytest.param(
            {"ready": False},
            "Pending",
            Reason.POD_STARTING,
            ["starting"],
            id="running-not-ready",
        ),
        pytest.param(
            {"phase": "Pending", "conditions": []},
            "Pending",
            Reason.POD_STARTING,
            ["starting"],
            id="no-conditions-yet",
        ),
    ],
)
def test_pod_states(pod_kwargs: dict[str, Any], phase: str, reason: str, message_parts: list[str]) -> None:
    body = workspace()
    result = plan(body, healthy(body, pod=pod(body, **pod_kwargs)))
    assert result.pod_action is PodAction.NONE
    pod_ready = condition(result, "PodReady")
    assert (pod_ready["status"], pod_ready["reason"]) == ("False", reason)
    ready = condition(result, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert result.status["phase"] == phase
    for part in message_parts:
        assert part in result.status["message"]
        assert part in pod_ready["message"]


@pytest.mark.parametrize(
    ("pod_status", "delete_reason", "message_part"),
    [
        (
            {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."},
            "Evicted",
            "low on resource",
        ),
        ({"phase": "Failed"}, "Failed", "the sandbox pod ended (Failed)"),
        ({"phase": "Succeeded"}, "Succeeded", "the sandbox pod ended (Succeeded)"),
    ],
)
def test_finished_pod_is_deleted(pod_status: dict[str, Any], delete_reason: str, message_part: str) -> None:
    body = workspace()
    finished = pod(body, ready=False)
    finished["status"].update(pod_status)
    result = plan(body, healthy(body, pod=finished))
    assert result.pod_action is PodAction.DELETE
    assert result.pod_delete_reason == delete_reason
    assert result.status["phase"] == "Pending"
    assert condition(result, "PodReady")["reason"] == Reason.POD_RECREATING
    assert message_part in result.status["message"]
    assert [e[0] for e in result.events] == ["Warning"]


def test_terminating_pod_is_waited_for() -> None:
    body = workspace()
    old = pod(body)
    old["metadata"]["deletionTimestamp"] = ago(1)
    result = plan(body, healthy(body, pod=old))
    assert result.pod_action is PodAction.NONE
    assert condition(result, "PodReady")["reason"] == Reason.POD_RECREATING
    assert result.status["phase"] == "Pending"
    assert result.requeue_after == 2.0


@pytest.mark.parametrize(
    "new_spec",
    [
        {"image": "sandbox:2"},
        {"env": [{"name": "DEBUG", "value": "1"}]},
        {"resources": {"limits": {"memory": "1Gi"}}},
        {"securityContext": {"readOnlyRootFilesystem": True}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_spec_drift_recreates_the_pod_and_keeps_the_volume(new_spec: dict[str, Any]) -> None:
    old_body = workspace()
    running = pod(old_body)  # built from the old spec
    body = workspace(new_spec, generation=2)
    result = plan(body, healthy(body, pod=running))
    assert result.pod_action is PodAction.DELETE
    assert result.pod_delete_reason == "SpecChanged"
    assert condition(result, "PodReady")["reason"] == Reason.POD_RECREATING
    assert result.status["phase"] == "Pending"
    assert result.status["observedGeneration"] == 2
    assert any(c["kind"] == "PersistentVolumeClaim" for c in result.apply)
    # After the delete: the next pass creates a pod of the new spec.
    after = plan(body, healthy(body, pod=None))
    assert after.pod_action is PodAction.CREATE
    assert after.pod is not None
    assert after.pod["spec"]["containers"][0]["image"] == body["spec"]["image"]


def test_pod_without_a_spec_hash_is_replaced() -> None:
    body = workspace()
    foreign = pod(body)
    del foreign["metadata"]["annotations"]
    assert plan(body, healthy(body, pod=foreign)).pod_action is PodAction.DELETE


@pytest.mark.parametrize(
    "unrelated",
    [
        {"network": {"egress": "Internet"}},
        {"storage": {"size": "5Gi"}},
        {"lifecycle": {"idleTimeoutSeconds": 3600}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_changes_that_do_not_touch_the_pod_keep_it(unrelated: dict[str, Any]) -> None:
    running = pod(workspace())
    body = workspace(unrelated, generation=2)
    assert plan(body, healthy(body, pod=running)).pod_action is PodAction.NONE


def test_status_changes_do_not_recreate_the_pod() -> None:
    body = workspace(
        status={"phase": "Ready", "lastActivityTime": ago(1), "message": "whatever", "observedGeneration": 7}
    )
    result = plan(body, healthy(body, pod=pod(workspace())))
    assert result.pod_action is PodAction.NONE
    assert result.status["phase"] == "Ready"


@pytest.mark.parametrize(
    ("pvc_phase", "phase", "reason", "message"),
    [
        ("Pending", "Pending", Reason.PVC_PENDING, "PersistentVolumeClaim ws-workspace is Pending"),
        (None, "Pending", Reason.PVC_PENDING, "PersistentVolumeClaim ws-workspace is Pending"),
        ("Lost", "Failed", Reason.PVC_LOST, "the workspace volume was lost"),
    ],
)
def test_storage_states(pvc_phase: str | None, phase: str, reason: str, message: str) -> None:
    body = workspace()
    result = plan(body, healthy(body, pvc=pvc(pvc_phase)))
    storage = condition(result, "StorageReady")
    assert (storage["status"], storage["reason"], storage["message"]) == ("False", reason, message)
    assert result.status["phase"] == phase
    assert result.status["message"] == message


def test_missing_pvc_and_network_policy() -> None:
    body = workspace()
    result = plan(body, healthy(body, pvc=None, network_policy=None))
    assert condition(result, "StorageReady")["reason"] == Reason.CREATING
    assert condition(result, "NetworkPolicyReady")["status"] == "False"
    assert condition(result, "NetworkPolicyReady")["reason"] == Reason.CREATING
    assert result.status["phase"] == "Pending"
    kinds = {c["kind"] for c in result.apply}
    assert {"PersistentVolumeClaim", "NetworkPolicy"} <= kinds


def test_failure_message_names_the_first_failing_part() -> None:
    body = workspace()
    result = plan(body, healthy(body, network_policy=None))
    assert condition(result, "Ready")["reason"] == Reason.CREATING
    assert result.status["phase"] == "Pending"


@pytest.mark.parametrize("pod_present", [True, False])
def test_suspend_deletes_the_pod_and_keeps_the_volume(pod_present: bool) -> None:
    body = workspace({"lifecycle": {"suspend": True}})
    result = plan(body, healthy(body, pod=pod(body) if pod_present else None))
    assert result.pod_action is (PodAction.DELETE if pod_present else PodAction.NONE)
    assert result.pod is None
    if pod_present:
        assert result.pod_delete_reason == Reason.SUSPENDED
        assert [e[1] for e in result.events] == [Reason.SUSPENDED]
    assert result.status["phase"] == "Suspended"
    pod_ready = condition(result, "PodReady")
    assert (pod_ready["status"], pod_ready["reason"]) == ("False", Reason.SUSPENDED)
    assert result.status["message"] == "suspended by spec.lifecycle.suspend"
    (claim,) = [c for c in result.apply if c["kind"] == "PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "ws-workspace"


def test_resume_after_suspend_creates_the_pod() -> None:
    suspended = plan(workspace({"lifecycle": {"suspend": True}}), Observed(pvc=pvc(), network_policy=NETPOL))
    body = workspace({"lifecycle": {"suspend": False}}, status=suspended.status)
    result = plan(body, Observed(pvc=pvc(), network_policy=NETPOL), NOW + timedelta(hours=1))
    assert result.pod_action is PodAction.CREATE
    assert result.status["phase"] == "Pending"


IDLE = {"lifecycle": {"idleTimeoutSeconds": 600}}


@pytest.mark.parametrize(
    ("status", "busy", "suspended", "requeue_after"),
    [
        pytest.param(pod_ready_status("True", ago(700)), False, True, None, id="ready-long-ago-no-activity"),
        pytest.param(pod_ready_status("True", ago(600)), False, True, None, id="exactly-at-deadline"),
        pytest.param(pod_ready_status("True", ago(100)), False, False, 500.0, id="ready-recently"),
        pytest.param(
            {**pod_ready_status("True", ago(5000)), "lastActivityTime": ago(60)},
            False,
            False,
            540.0,
            id="recent-activity",
        ),
        pytest.param(
            {**pod_ready_status("True", ago(30)), "lastActivityTime": ago(5000)},
            False,
            False,
            570.0,
            id="later-of-ready-and-activity",
        ),
        pytest.param(
            {**pod_ready_status("True", ago(5000)), "lastActivityTime": ago(601)},
            False,
            True,
            None,
            id="activity-too-old",
        ),
        pytest.param(
            {**pod_ready_status("True", ago(5000)), "lastActivityTime": ago(5000)},
            True,
            False,
            None,
            id="busy-never-idle",
        ),
        pytest.param({**pod_ready_status("True", ago(599.5))}, False, False, 1.0, id="requeue-at-least-a-second"),
    ],
)
def test_idle_timeout(status: dict[str, Any], busy: bool, suspended: bool, requeue_after: float | None) -> None:
    body = workspace(IDLE, status=status)
    result = plan(body, healthy(body, busy=busy))
    if suspended:
        assert result.pod_action is PodAction.DELETE
        assert result.pod_delete_reason == Reason.IDLE_TIMEOUT
        assert result.status["phase"] == "Suspended"
        assert condition(result, "PodReady")["reason"] == Reason.IDLE_TIMEOUT
        assert "idleTimeoutSeconds" in result.status["message"]
    else:
        assert result.pod_action is PodAction.NONE
        assert result.status["phase"] == "Ready"
    assert result.requeue_after == requeue_after


def _idle_suspended_status() -> dict[str, Any]:
    body = workspace(IDLE, status=pod_ready_status("True", ago(700)))
    return plan(body, healthy(body)).status


def test_idle_suspension_sticks_until_activity() -> None:
    body = workspace(IDLE, status=_idle_suspended_status())
    later = NOW + timedelta(hours=5)
    result = plan(body, Observed(pvc=pvc(), network_policy=NETPOL), later)
    assert result.pod_action is PodAction.NONE
    assert result.status["phase"] == "Suspended"
    assert condition(result, "PodReady")["reason"] == Reason.IDLE_TIMEOUT
    # Same with an old lastActivityTime as the baseline.
    body["status"]["lastActivityTime"] = ago(3600)
    assert plan(body, Observed(pvc=pvc(), network_policy=NETPOL), later).status["phase"] == "Suspended"


def test_activity_after_idle_suspension_wakes_the_workspace() -> None:
    """The harness (or `kubectl paddock shell`) wakes a workspace by writing status.lastActivityTime."""
    body = workspace(IDLE, status=_idle_suspended_status())
    body["status"]["lastActivityTime"] = (NOW + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    result = plan(body, Observed(pvc=pvc(), network_policy=NETPOL), NOW + timedelta(hours=1, seconds=1))
    assert result.pod_action is PodAction.CREATE
    assert result.status["phase"] == "Pending"


def test_a_run_resumes_an_idle_suspended_workspace() -> None:
    body = workspace(IDLE, status=_idle_suspended_status())
    result = plan(body, Observed(pvc=pvc(), network_policy=NETPOL, busy=True), NOW + timedelta(hours=5))
    assert result.pod_action is PodAction.CREATE
    assert result.status["phase"] == "Pending"
    # The run ends before the new pod is ready: the starting pod is not suspended again at once.
    starting = workspace(IDLE, status={**result.status, "lastActivityTime": ago(3600)})
    later = plan(starting, healthy(starting, pod=pod(starting, ready=False)), NOW + timedelta(hours=5, seconds=10))
    assert later.pod_action is PodAction.NONE
    assert later.status["phase"] == "Pending"


def test_resume_from_spec_suspend_with_stale_activity_is_not_idle() -> None:
    suspended = workspace(
        {"lifecycle": {"suspend": True, "idleTimeoutSeconds": 600}},
        status={**pod_ready_status("False", ago(7200), Reason.SUSPENDED), "lastActivityTime": ago(7200)},
    )
    first = plan(suspended, Observed(pvc=pvc(), network_policy=NETPOL))
    assert first.status["phase"] == "Suspended"
    resumed = workspace(IDLE, status={**first.status, "lastActivityTime": ago(7200)})
    result = plan(resumed, Observed(pvc=pvc(), network_policy=NETPOL))
    assert result.pod_action is PodAction.CREATE
    assert result.status["phase"] == "Pending"
    # Once the pod is ready, the idle clock starts from then.
    ready = plan(resumed, healthy(resumed))
    assert ready.status["phase"] == "Ready"
    now_ready = workspace(IDLE, status={**ready.status, "lastActivityTime": ago(7200)})
    assert plan(now_ready, healthy(now_ready), NOW + timedelta(seconds=60)).requeue_after == 540.0


def test_spec_suspend_wins_over_idle() -> None:
    body = workspace(
        {"lifecycle": {"suspend": True, "idleTimeoutSeconds": 600}}, status=pod_ready_status("True", ago(9000))
    )
    result = plan(body, healthy(body))
    assert result.pod_delete_reason == Reason.SUSPENDED
    assert condition(result, "PodReady")["reason"] == Reason.SUSPENDED


@pytest.mark.parametrize("seconds_past", [0, 1, 86400])
def test_shutdown_time_passed_deletes_the_workspace(seconds_past: int) -> None:
    body = workspace({"lifecycle": {"shutdownTime": ago(seconds_past)}})
    result = plan(body, healthy(body))
    assert result.delete_workspace is True
    assert result.apply == []
    assert result.pod_action is PodAction.NONE
    assert [e[1] for e in result.events] == ["ShutdownTime"]


@pytest.mark.parametrize(
    ("shutdown_in", "extra_spec", "status", "requeue_after"),
    [
        (3600, {}, None, 3600.0),
        (0.2, {}, None, 1.0),
        (3600, IDLE, pod_ready_status("True", ago(100)), 500.0),
        (300, IDLE, pod_ready_status("True", ago(100)), 300.0),
    ],
)
def test_future_shutdown_time_requeues_at_the_earliest_deadline(
    shutdown_in: float, extra_spec: dict[str, Any], status: dict[str, Any] | None, requeue_after: float
) -> None:
    when = (NOW + timedelta(seconds=shutdown_in)).isoformat()
    lifecycle = {**extra_spec.get("lifecycle", {}), "shutdownTime": when}
    body = workspace({"lifecycle": lifecycle}, status=status)
    result = plan(body, healthy(body))
    assert result.delete_workspace is False
    assert result.status["phase"] == "Ready"
    assert result.requeue_after == requeue_after


def test_terminating_pod_requeue_is_not_stretched_by_a_far_deadline() -> None:
    body = workspace({"lifecycle": {"shutdownTime": format_time(NOW + timedelta(hours=1))}})
    old = pod(body)
    old["metadata"]["deletionTimestamp"] = ago(1)
    assert plan(body, healthy(body, pod=old)).requeue_after == 2.0


def test_deleting_workspace_is_terminating() -> None:
    body = workspace(deleting=True)
    assert plan(body, healthy(body)).status["phase"] == "Terminating"


def test_reconcile_is_stable() -> None:
    """Applying the plan's status and planning again (an operator restart, a resync) changes nothing."""
    body = workspace()
    first = plan(body, healthy(body))
    stored = workspace(status=copy.deepcopy(first.status))
    for later in (NOW + timedelta(seconds=1), NOW + timedelta(days=3)):
        again = plan(stored, healthy(stored), later)
        assert {k: again.status.get(k) for k in STATUS_KEYS} == {k: first.status.get(k) for k in STATUS_KEYS}
        assert again.pod_action is PodAction.NONE
        assert again.apply == first.apply


def test_transition_times_follow_status_changes_only() -> None:
    pending = plan(workspace(), Observed())
    body = workspace(status=pending.status)
    later = NOW + timedelta(minutes=2)
    ready = plan(body, healthy(body), later)
    for c in ready.status["conditions"]:
        assert c["lastTransitionTime"] == format_time(later)
    # A False condition that stays False keeps its time even when its reason moves on.
    body = workspace(status=pending.status)
    starting = plan(body, healthy(body, pod=pod(body, ready=False)), later)
    assert condition(starting, "PodReady")["reason"] == Reason.POD_STARTING
    assert condition(starting, "PodReady")["lastTransitionTime"] == format_time(NOW)
    assert condition(starting, "StorageReady")["lastTransitionTime"] == format_time(later)


def test_foreign_conditions_are_kept() -> None:
    foreign = {"type": "example.com/Audited", "status": "True", "reason": "Ok", "lastTransitionTime": ago(50)}
    body = workspace(status={"conditions": [foreign]})
    assert foreign in plan(body, healthy(body)).status["conditions"]


@pytest.mark.parametrize("generation", [1, 2, 17])
def test_observed_generation(generation: int) -> None:
    body = workspace(generation=generation)
    result = plan(body, healthy(body))
    assert result.status["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in result.status["conditions"]} == {generation}


def test_long_workspace_name() -> None:
    body = workspace()
    body["metadata"]["name"] = "w" * 200
    result = plan(body, Observed())
    assert result.pod is not None
    assert result.status["podName"] == result.pod["metadata"]["name"] == naming.pod_name("w" * 200)
    assert len(result.status["podName"]) <= 63
    assert result.status["pvcName"] == naming.pvc_name("w" * 200)
