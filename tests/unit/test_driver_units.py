"""Pure pieces of the run driver: agent construction, approval matching, decisions, error mapping, lease
staleness, transcript truncation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import openai
import pytest
from agents.exceptions import MaxTurnsExceeded
from agents.sandbox.capabilities import Compaction, Filesystem, Shell
from agents.sandbox.entries import Dir, File, GitRepo

from paddock_harness.driver import protocol
from paddock_harness.driver.agentbuild import (
    ModelTarget,
    build_agent,
    build_manifest,
    describe_call,
    needs_human,
)
from paddock_harness.driver.errors import RunFailureError, classify
from paddock_harness.driver.lease import is_stale
from paddock_harness.driver.settings import parse_args
from paddock_harness.driver.transcript import (
    ENCODED_MAX_BYTES,
    ITEM_MAX_BYTES,
    encode_entry,
    make_entry,
    split_utf8,
    truncate_utf8,
)
from paddock_harness.sandbox import WorkspaceError
from paddock_operator.api import AgentRunSpec, Approval


def spec(**fields: Any) -> AgentRunSpec:
    return AgentRunSpec.model_validate({"workspaceRef": {"name": "ws"}, "prompt": "do it", **fields})


# -- agent construction ------------------------------------------------------------------------------


def test_agent_from_spec() -> None:
    run = spec(
        instructions="be careful",
        model={"name": "gpt-test", "baseURL": "http://127.0.0.1:1/v1", "reasoningEffort": "high"},
        capabilities={"compaction": False},
    )
    target = ModelTarget(model="gpt-test", base_url="http://127.0.0.1:1/v1", api_key="sk-secret-1")
    agent = build_agent(run, target, run_ref="ns/r1", default_instructions="default")
    assert agent.instructions == "be careful"
    assert agent.model_settings.reasoning is not None
    assert agent.model_settings.reasoning.effort == "high"
    assert [type(c) for c in agent.capabilities] == [Shell, Filesystem]
    model: Any = agent.model
    assert model.model == "gpt-test"
    client = model._client
    assert str(client.base_url).rstrip("/") == "http://127.0.0.1:1/v1"
    assert client.default_headers[protocol.RUN_HEADER] == "ns/r1"
    assert client.max_retries == 5
    assert "sk-secret-1" not in repr(target)


def test_agent_defaults() -> None:
    agent = build_agent(spec(), ModelTarget("m-default", None, "k"), run_ref="a/b", default_instructions="default")
    assert agent.instructions == "default"
    assert agent.model_settings.reasoning is None
    assert [type(c) for c in agent.capabilities] == [Shell, Filesystem, Compaction]


def test_manifest_conversion() -> None:
    manifest = spec(
        manifest={
            "entries": [
                {"path": "README.md", "file": {"content": "hi"}},
                {"path": "bin/blob", "file": {"contentBase64": base64.b64encode(b"\x00\x01").decode()}},
                {"path": "out", "dir": {}},
                {"path": "src", "gitRepo": {"repo": "o/n", "ref": "main", "subpath": "lib"}},
            ],
            "environment": [{"name": "FOO", "value": "bar"}],
        }
    ).manifest
    converted = build_manifest(manifest, "/tmp/root")
    assert converted.root == "/tmp/root"
    readme, blob, out, src = (converted.entries[k] for k in ("README.md", "bin/blob", "out", "src"))
    assert isinstance(readme, File)
    assert readme.content == b"hi"
    assert isinstance(blob, File)
    assert blob.content == b"\x00\x01"
    assert isinstance(out, Dir)
    assert isinstance(src, GitRepo)
    assert (src.repo, src.ref, src.subpath, src.host) == (
        "o/n",
        "main",
        "lib",
        "github.com",
    )
    assert converted.environment.normalized()["FOO"].value.model_dump()["value"] == "bar"
    # without a root the sandbox client chooses (the workspace volume's mount path)
    assert "root" not in build_manifest(manifest).model_fields_set


# -- approvals ---------------------------------------------------------------------------------------


def test_describe_call() -> None:
    assert describe_call("exec_command", '{"cmd": "git push origin main"}') == "git push origin main"
    assert describe_call("write_stdin", '{"session_id": 1, "chars": "y\\n"}') == "y\n"
    assert describe_call("apply_patch", "*** Begin Patch\n") == "*** Begin Patch\n"
    assert describe_call("exec_command", "{not json") == "{not json"


@pytest.mark.parametrize(
    ("policy", "tool", "command", "expected"),
    [
        ({"policy": "Never"}, "exec_command", "rm -rf /", False),
        ({"policy": "Always"}, "exec_command", "ls", True),
        ({"policy": "Always"}, "apply_patch", "*** Begin Patch", True),
        ({"policy": "Always"}, "view_image", "x.png", False),
        ({"policy": "CommandPatterns", "commandPatterns": ["git push*"]}, "exec_command", "git push origin", True),
        ({"policy": "CommandPatterns", "commandPatterns": ["git push*"]}, "exec_command", "cd x && git push", False),
        ({"policy": "CommandPatterns", "commandPatterns": ["*git push*"]}, "exec_command", "cd x && git push", True),
        ({"policy": "CommandPatterns", "commandPatterns": ["*rm -rf*"]}, "exec_command", "  rm -rf build  ", True),
        ({"policy": "CommandPatterns", "commandPatterns": ["*rm -rf*"]}, "apply_patch", "rm -rf", False),
        ({"policy": "CommandPatterns", "commandPatterns": ["RM*"]}, "exec_command", "rm x", False),
    ],
)
def test_needs_human(policy: dict[str, Any], tool: str, command: str, expected: bool) -> None:
    assert needs_human(Approval.model_validate(policy), tool, command) is expected


def test_parse_decisions() -> None:
    pending = ["c1", "c2", "c3"]
    assert protocol.parse_decisions({}, pending).empty
    d = protocol.parse_decisions({protocol.ANNOTATION_APPROVE: "c1, c2", protocol.ANNOTATION_REJECT: "c2"}, pending)
    assert d.approved == {"c1"}
    assert d.rejected == {"c2"}
    d = protocol.parse_decisions({protocol.ANNOTATION_APPROVE: "ALL", "other": "x"}, pending)
    assert d.approved == set(pending)
    assert d.present == (protocol.ANNOTATION_APPROVE,)
    d = protocol.parse_decisions(
        {protocol.ANNOTATION_REJECT: "c3 zzz", protocol.ANNOTATION_REJECT_REASON: " no "}, pending
    )
    assert d.rejected == {"c3"}
    assert d.unknown == ("zzz",)
    assert d.reject_reason == "no"
    assert protocol.rejection_message("no").endswith("Reason: no")


# -- errors ------------------------------------------------------------------------------------------


def _status_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    response = httpx.Response(status, request=httpx.Request("POST", "http://model/v1/responses"))
    return cls("boom", response=response, body={"error": {"message": f"said {status}"}})


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_status_error(openai.AuthenticationError, 401), "ModelAuthenticationFailed"),
        (_status_error(openai.PermissionDeniedError, 403), "ModelPermissionDenied"),
        (_status_error(openai.NotFoundError, 404), "ModelNotFound"),
        (_status_error(openai.RateLimitError, 429), "RateLimited"),
        (_status_error(openai.InternalServerError, 500), "ModelError"),
        (openai.APIConnectionError(request=httpx.Request("POST", "http://m")), "ModelUnavailable"),
        (MaxTurnsExceeded("Max turns (3) exceeded"), "MaxTurnsExceeded"),
        (WorkspaceError("gone", reason="not_found"), "SandboxUnavailable"),
        (RunFailureError("MaxTotalTokensExceeded", "too many"), "MaxTotalTokensExceeded"),
        (ValueError("odd"), "HarnessError"),
    ],
)
def test_classify(error: BaseException, reason: str) -> None:
    assert classify(error).reason == reason


def test_classify_follows_the_cause_chain_and_says_retries() -> None:
    try:
        try:
            raise _status_error(openai.RateLimitError, 429)
        except openai.RateLimitError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        classified = classify(outer, retries=5)
    assert classified.reason == "RateLimited"
    assert "said 429" in classified.message
    assert "after 5 retries" in classified.message


# -- leases ------------------------------------------------------------------------------------------


def test_lease_staleness() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    fresh = (now - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    old = (now - timedelta(seconds=31)).isoformat().replace("+00:00", "Z")
    assert is_stale({}, now)
    assert is_stale({"holderIdentity": "a", "renewTime": old, "leaseDurationSeconds": 30}, now)
    assert not is_stale({"holderIdentity": "a", "renewTime": fresh, "leaseDurationSeconds": 30}, now)


# -- transcript --------------------------------------------------------------------------------------


def test_truncate_on_character_boundary() -> None:
    text = "é" * ITEM_MAX_BYTES  # 2 bytes each
    cut, truncated, size = truncate_utf8(text)
    assert truncated
    assert size == 2 * ITEM_MAX_BYTES
    assert len(cut.encode()) <= ITEM_MAX_BYTES
    assert set(cut) == {"é"}
    assert truncate_utf8("short") == ("short", False, 5)


def test_split_keeps_everything() -> None:
    text = ("ab€" * 20000)[:50001]
    parts = split_utf8(text)
    assert "".join(parts) == text
    assert all(len(p.encode()) <= ITEM_MAX_BYTES for p in parts)
    entries = make_entry("final", text, split=True)
    assert [e["part"] for e in entries] == list(range(len(parts)))
    assert "".join(e["text"] for e in entries) == text


def test_tool_output_is_truncated_and_escaping_is_bounded() -> None:
    (entry,) = make_entry("tool_output", "x" * 100_000, callId="c1")
    assert entry["truncated"]
    assert entry["size"] == 100_000
    assert len(entry["text"]) == ITEM_MAX_BYTES
    (nasty,) = make_entry("tool_output", "\x01" * 100_000)
    assert len(encode_entry(nasty).encode()) <= ENCODED_MAX_BYTES


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PADDOCK_NAMESPACES", "a, b")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("PADDOCK_TRACING", "true")
    settings = parse_args(["--max-concurrent-runs", "3", "--default-model", "m1"])
    assert settings.namespaces == ("a", "b")
    assert settings.max_concurrent_runs == 3
    assert settings.default_model == "m1"
    assert settings.default_api_key == "sk-env"
    assert settings.tracing
    assert "sk-env" not in repr(settings)
    assert parse_args(["-n", "x"]).namespaces == ("x",)
