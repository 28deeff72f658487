"""Unit tests for images/oci_pack.py: reproducibility and OCI image-layout validity."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PACKER = Path(__file__).resolve().parents[2] / "images" / "oci_pack.py"


def _load_packer() -> ModuleType:
    # images/ is not a package: load the script as a module by path.
    spec = importlib.util.spec_from_file_location("oci_pack", PACKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["oci_pack"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


oci_pack = _load_packer()

IS_ROOT = os.geteuid() == 0


def _make_rootfs(root: Path, mtime: int) -> None:
    """A tiny rootfs with the entry kinds the packer must handle."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "empty").mkdir()
    tool = root / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "etc" / "motd").write_text("hello\n")
    secret = root / "etc" / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    os.link(tool, root / "bin" / "tool-hardlink")
    (root / "bin" / "sh-link").symlink_to("tool")
    os.mkfifo(root / "fifo")
    # Names past tar's 100-byte field need PAX headers.
    long_dir = root / ("a-very-long-directory-name-" + "x" * 60)
    long_dir.mkdir()
    (long_dir / ("file-" + "y" * 80)).write_text("long\n")
    if IS_ROOT:
        os.chown(secret, 1000, 1001)
        os.mknod(root / "dev-null", 0o666 | 0o020000, os.makedev(1, 3))
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def _config() -> Any:
    return oci_pack.ImageConfig(
        entrypoint=["/bin/tool"],
        cmd=["--flag"],
        env=["PATH=/bin", "LANG=C.UTF-8"],
        user="1000:1000",
        workdir="/work",
        labels={"b": "2", "a": "1"},
    )


NAMES = ["localhost/paddock/test:abc123", "localhost/paddock/test:dev"]


def _pack(root: Path, out: Path, created: int | None = None) -> Any:
    return oci_pack.pack_image([root], _config(), NAMES, out, created=created, arch="amd64")


def _read_layout(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        files: dict[str, bytes] = {}
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                files[member.name] = handle.read()
        return files


def _blob(files: dict[str, bytes], digest: str) -> bytes:
    algo, _, hexdigest = digest.partition(":")
    assert algo == "sha256"
    data = files[f"blobs/sha256/{hexdigest}"]
    assert hashlib.sha256(data).hexdigest() == hexdigest, "blob content must match its digest"
    return data


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    # Two copies of one tree made at different times, with different mtimes.
    first, second = tmp_path / "one", tmp_path / "two"
    _make_rootfs(first, mtime=1_000_000)
    _make_rootfs(second, mtime=2_000_000)
    r1 = _pack(first, tmp_path / "1.tar", created=0)
    r2 = _pack(second, tmp_path / "2.tar", created=0)
    assert r1.manifest_digest == r2.manifest_digest
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()


def test_source_date_epoch_sets_mtimes_and_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    _make_rootfs(root, mtime=123)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = _pack(root, tmp_path / "img.tar")
    files = _read_layout(tmp_path / "img.tar")
    config = json.loads(_blob(files, result.config_digest))
    assert config["created"] == "2023-11-14T22:13:20Z"
    layer = _blob(files, result.layers[0].blob.digest)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        assert {member.mtime for member in tar.getmembers()} == {1_700_000_000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert _pack(root, tmp_path / "img0.tar").manifest_digest != result.manifest_digest


def test_layout_is_valid_oci(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make_rootfs(root, mtime=5)
    result = _pack(root, tmp_path / "img.tar", created=0)
    with tarfile.open(tmp_path / "img.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["oci-layout", "index.json"]
    files = _read_layout(tmp_path / "img.tar")
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == oci_pack.MEDIA_INDEX
    # One descriptor per name, all pointing at the same manifest.
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == NAMES
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "abc123",
        "dev",
    ]
    assert {m["digest"] for m in index["manifests"]} == {result.manifest_digest}
    descriptor = index["manifests"][0]
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}

    manifest_bytes = _blob(files, descriptor["digest"])
    assert len(manifest_bytes) == descriptor["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == oci_pack.MEDIA_MANIFEST
    assert manifest["config"]["mediaType"] == oci_pack.MEDIA_CONFIG
    config_bytes = _blob(files, manifest["config"]["digest"])
    assert len(config_bytes) == manifest["config"]["size"]
    config = json.loads(config_bytes)
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["config"] == {
        "Entrypoint": ["/bin/tool"],
        "Cmd": ["--flag"],
        "Env": ["PATH=/bin", "LANG=C.UTF-8"],
        "User": "1000:1000",
        "WorkingDir": "/work",
        "Labels": {"a": "1", "b": "2"},
    }
    assert len(manifest["layers"]) == 1
    layer_desc = manifest["layers"][0]
    assert layer_desc["mediaType"] == oci_pack.MEDIA_LAYER_GZIP
    layer = _blob(files, layer_desc["digest"])
    assert len(layer) == layer_desc["size"]
    assert layer[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    raw = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}
    # Every blob in the layout is referenced: config, manifest, layer.
    assert sorted(n for n in files if n.startswith("blobs/")) == sorted(
        f"blobs/sha256/{d.split(':')[1]}"
        for d in (descriptor["digest"], manifest["config"]["digest"], layer_desc["digest"])
    )


def test_layer_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make_rootfs(root, mtime=5)
    result = _pack(root, tmp_path / "img.tar", created=0)
    files = _read_layout(tmp_path / "img.tar")
    raw = gzip.decompress(_blob(files, result.layers[0].blob.digest))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        order = [m.name for m in tar.getmembers()]
        # Pre-order with sorted names (equal to plain sorting for these names).
        assert order == sorted(order)
        assert members["bin"].isdir()
        assert members["empty"].isdir()
        assert members["bin/tool"].isfile()
        assert members["bin/tool"].mode == 0o755
        assert members["etc/secret"].mode == 0o600
        # The first path of an inode is the file, the later ones hard links to it.
        assert members["bin/tool-hardlink"].islnk()
        assert members["bin/tool-hardlink"].linkname == "bin/tool"
        assert members["bin/sh-link"].issym()
        assert members["bin/sh-link"].linkname == "tool"
        assert members["fifo"].isfifo()
        assert "dev-null" not in members, "device nodes are skipped"
        long_dir = "a-very-long-directory-name-" + "x" * 60
        long_file = members[f"{long_dir}/file-" + "y" * 80]
        handle = tar.extractfile(long_file)
        assert handle is not None
        assert handle.read() == b"long\n"
        assert all(m.uname == "" and m.gname == "" for m in members.values())
        assert all(m.mtime == 0 for m in members.values())
        if IS_ROOT:
            assert (members["etc/secret"].uid, members["etc/secret"].gid) == (1000, 1001)
        else:
            assert members["etc/secret"].uid == os.geteuid()


def test_several_layers(tmp_path: Path) -> None:
    base, top = tmp_path / "base", tmp_path / "top"
    _make_rootfs(base, mtime=1)
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "motd").write_text("replaced\n")
    result = oci_pack.pack_image([base, top], _config(), NAMES[:1], tmp_path / "img.tar", created=0)
    files = _read_layout(tmp_path / "img.tar")
    config = json.loads(_blob(files, result.config_digest))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in result.layers]
    assert len(config["history"]) == 2


def test_cli(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make_rootfs(root, mtime=9)
    out = tmp_path / "cli.tar"
    digest_file = tmp_path / "digest"
    proc = subprocess.run(
        [
            sys.executable,
            str(PACKER),
            "--layer",
            str(root),
            "--name",
            NAMES[0],
            "--name",
            NAMES[1],
            "--output",
            str(out),
            "--entrypoint",
            '["/bin/tool"]',
            "--cmd",
            '["--flag"]',
            "--env",
            "PATH=/bin",
            "--env",
            "LANG=C.UTF-8",
            "--user",
            "1000:1000",
            "--workdir",
            "/work",
            "--label",
            "b=2",
            "--label",
            "a=1",
            "--arch",
            "amd64",
            "--created",
            "0",
            "--digest-file",
            str(digest_file),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(proc.stdout)
    assert digest_file.read_text().strip() == summary["manifest_digest"]
    # The CLI and the library produce the same image for the same input.
    assert _pack(root, tmp_path / "lib.tar", created=0).manifest_digest == summary["manifest_digest"]


def test_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        oci_pack.pack_image([tmp_path / "missing"], _config(), NAMES, tmp_path / "x.tar")
    with pytest.raises(ValueError, match="name"):
        oci_pack.pack_image([tmp_path], _config(), [], tmp_path / "x.tar")
