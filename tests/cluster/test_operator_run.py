"""The operator's half of AgentRuns: workspace resolution, queueing, deadlines, cancellation, expiry."""

from __future__ import annotations

from paddock_helpers import Paddock, condition, run_manifest, sandbox_image, wait_for, workspace_manifest


def test_run_against_a_missing_workspace_says_why_and_recovers(paddock: Paddock) -> None:
    paddock.create(run_manifest("orphan", workspaceRef={"name": "later"}, limits={"timeoutSeconds": 600}))
    run = wait_for(
        "the WorkspaceReady condition", lambda: (r := paddock.run("orphan")) and condition(r, "WorkspaceReady") and r
    )
    assert run["status"]["phase"] == "Pending"
    ready = condition(run, "WorkspaceReady")
    assert ready["status"] == "False"
    assert ready["reason"] == "WorkspaceNotFound"
    assert "later" in ready["message"]
    paddock.create(workspace_manifest("later"))
    paddock.wait_run_phase("orphan", "Running", timeout=60)


def test_template_workspace_is_created_and_removed_with_the_run(paddock: Paddock) -> None:
    paddock.create(run_manifest("templated", workspaceTemplate={"spec": {"image": sandbox_image()}}))
    paddock.wait_run_phase("templated", "Running", timeout=60)
    ws = paddock.workspace("templated")
    assert ws is not None
    assert ws["metadata"]["ownerReferences"][0]["kind"] == "AgentRun"
    assert ws["status"]["phase"] == "Ready"
    paddock.delete("agentruns", "templated")
    wait_for("the owned workspace to go", lambda: paddock.workspace("templated") is None, timeout=60)
    wait_for("its pod to go", lambda: paddock.pod("templated-sandbox") is None, timeout=60)


def test_timeout_fails_the_run_with_deadline_exceeded(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("clock"))
    paddock.create(run_manifest("slow", workspaceRef={"name": "clock"}, limits={"timeoutSeconds": 3}))
    paddock.wait_run_phase("slow", "Running", timeout=60)
    run = paddock.wait_run_phase("slow", "Failed", timeout=30)
    assert run["status"]["lastError"]["reason"] == "DeadlineExceeded"
    assert condition(run, "Finished")["reason"] == "DeadlineExceeded"
    assert run["status"]["completionTime"]


def test_cancel_and_queueing_in_one_workspace(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("shared"))
    paddock.create(run_manifest("first", workspaceRef={"name": "shared"}))
    paddock.wait_run_phase("first", "Running", timeout=60)
    paddock.create(run_manifest("second", workspaceRef={"name": "shared"}))
    paddock.create(run_manifest("third", workspaceRef={"name": "shared"}))
    second = wait_for(
        "second to queue",
        lambda: (r := paddock.run("second")) and (r.get("status") or {}).get("queuePosition") == 1 and r,
    )
    assert condition(second, "WorkspaceReady")["reason"] == "WorkspaceBusy"
    third = wait_for(
        "third to queue",
        lambda: (r := paddock.run("third")) and (r.get("status") or {}).get("queuePosition") == 2 and r,
    )
    assert third["status"]["phase"] == "Pending"

    paddock.patch("agentruns", "first", {"spec": {"cancel": True}})
    cancelled = paddock.wait_run_phase("first", "Cancelled", timeout=30)
    assert condition(cancelled, "Finished")["reason"] == "Cancelled"
    paddock.wait_run_phase("second", "Running", timeout=30)
    assert paddock.phase("agentruns", "third") == "Pending"


def test_finished_runs_expire_after_their_ttl(paddock: Paddock) -> None:
    paddock.create(
        run_manifest("brief", workspaceTemplate={"spec": {"image": sandbox_image()}}, ttlSecondsAfterFinished=2)
    )
    paddock.wait_run_phase("brief", "Running", timeout=60)
    paddock.patch("agentruns", "brief", {"spec": {"cancel": True}})
    paddock.wait_run_phase("brief", "Cancelled", timeout=30)
    wait_for("the run to expire", lambda: paddock.run("brief") is None, timeout=30)
    wait_for("its workspace to go", lambda: paddock.workspace("brief") is None, timeout=60)
