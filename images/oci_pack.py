#!/usr/bin/env python3
"""Reproducible OCI image packer (stdlib only).

Turns one or more layer directories plus an image config into an OCI
image-layout tarball that ``ctr -n k8s.io images import`` understands.
We write our own because the build machine has no Docker engine and no
registry, and because we want byte-identical output for identical input:

* layer entries are sorted, mtimes fixed (SOURCE_DATE_EPOCH or 0),
  owners numeric (uid/gid kept, user/group names dropped);
* gzip streams carry mtime 0 and no file name;
* JSON is serialised with sorted keys and no whitespace.

Hardlinks become tar hardlink entries, symlinks are kept, character and
block devices and sockets are skipped (the runtime provides /dev), xattrs
are not copied. Layer directories are applied in order with no
whiteout handling: a later layer can add or replace files, not delete.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import stat
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Serialise JSON deterministically (sorted keys, compact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def source_date_epoch() -> int:
    """Return SOURCE_DATE_EPOCH from the environment, or 0 when unset/empty."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return 0
    value = int(raw)
    if value < 0:
        raise ValueError("SOURCE_DATE_EPOCH must not be negative")
    return value


def go_arch() -> str:
    """Map the host machine to the OCI/Go architecture name."""
    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)


class _Sink(Protocol):
    """Anything with a binary write(), e.g. an open file or a GzipFile."""

    def write(self, data: memoryview, /) -> int: ...


class _HashingWriter(io.RawIOBase):
    """Write-through file wrapper that hashes and counts what passes."""

    def __init__(self, target: _Sink) -> None:
        super().__init__()
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._target.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob stored in a temporary file until written out."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class LayerBlob:
    """A compressed layer plus the digest of its uncompressed tar (diff_id)."""

    blob: Blob
    diff_id: str
    entries: int


@dataclass
class ImageConfig:
    """The runtime part of an OCI image config ("config" object)."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.entrypoint is not None:
            out["Entrypoint"] = self.entrypoint
        if self.cmd is not None:
            out["Cmd"] = self.cmd
        if self.env:
            out["Env"] = self.env
        if self.user:
            out["User"] = self.user
        if self.workdir:
            out["WorkingDir"] = self.workdir
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out


@dataclass(frozen=True)
class PackResult:
    """What was written: the manifest digest identifies the image."""

    output: Path
    manifest_digest: str
    config_digest: str
    layers: list[LayerBlob]
    names: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "manifest_digest": self.manifest_digest,
            "config_digest": self.config_digest,
            "names": self.names,
            "layers": [
                {
                    "digest": layer.blob.digest,
                    "size": layer.blob.size,
                    "diff_id": layer.diff_id,
                    "entries": layer.entries,
                }
                for layer in self.layers
            ],
            "compressed_size": sum(layer.blob.size for layer in self.layers),
        }


def _walk_sorted(root: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """Yield (archive name, path) in pre-order: each directory, then its sorted contents."""
    for name in sorted(os.listdir(root)):
        path = root / name
        arcname = f"{prefix}{name}"
        yield arcname, path
        if stat.S_ISDIR(path.lstat().st_mode):
            yield from _walk_sorted(path, f"{arcname}/")


def _tarinfo_for(
    arcname: str,
    path: Path,
    mtime: int,
    hardlinks: dict[tuple[int, int], str],
) -> tarfile.TarInfo | None:
    """Build a normalised TarInfo, or None for entries we deliberately skip."""
    st = path.lstat()
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    # Numeric owner only: names would leak the build host's user database.
    info.uname = ""
    info.gname = ""
    info.mtime = mtime
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        return info
    if stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        return info
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            first = hardlinks.get(key)
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                return info
            hardlinks[key] = arcname
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        return info
    if stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
        return info
    # Character/block devices and sockets: the container runtime supplies /dev.
    return None


def build_layer(
    root: Path,
    workdir: Path,
    mtime: int,
    compresslevel: int = 6,
) -> LayerBlob:
    """Tar and gzip one directory reproducibly into a blob under workdir."""
    if not root.is_dir():
        raise NotADirectoryError(f"layer root is not a directory: {root}")
    fd, tmp_name = tempfile.mkstemp(prefix="layer-", suffix=".tar.gz", dir=workdir)
    tmp_path = Path(tmp_name)
    entries = 0
    with os.fdopen(fd, "wb") as raw_out:
        compressed = _HashingWriter(raw_out)
        # filename="" and mtime=0 keep the gzip header free of build-time data.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=compresslevel, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
                hardlinks: dict[tuple[int, int], str] = {}
                for arcname, path in _walk_sorted(root):
                    info = _tarinfo_for(arcname, path, mtime, hardlinks)
                    if info is None:
                        continue
                    entries += 1
                    if info.type == tarfile.REGTYPE:
                        with path.open("rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    blob = Blob(f"sha256:{compressed.sha256.hexdigest()}", compressed.size, tmp_path)
    return LayerBlob(blob, f"sha256:{uncompressed.sha256.hexdigest()}", entries)


def _bytes_blob(data: bytes, workdir: Path) -> Blob:
    fd, tmp_name = tempfile.mkstemp(prefix="blob-", dir=workdir)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Blob(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data), Path(tmp_name))


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _ref_tag(name: str) -> str:
    """The tag part of a reference (what OCI tools put in ref.name)."""
    last = name.rsplit("/", 1)[-1]
    if "@" in last:
        return last.split("@", 1)[1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "latest"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


def pack_image(
    layer_dirs: Sequence[Path],
    config: ImageConfig,
    names: Sequence[str],
    output: Path,
    created: int | None = None,
    arch: str | None = None,
    compresslevel: int = 6,
    history_comment: str = "paddock oci_pack",
) -> PackResult:
    """Write an OCI image-layout tarball for layer_dirs to output (atomically)."""
    if not layer_dirs:
        raise ValueError("at least one layer directory is required")
    if not names:
        raise ValueError("at least one image name is required")
    epoch = source_date_epoch() if created is None else created
    architecture = arch or go_arch()
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".oci-pack-", dir=output.parent) as tmp:
        workdir = Path(tmp)
        layers = [build_layer(Path(d), workdir, epoch, compresslevel) for d in layer_dirs]
        config_doc: dict[str, Any] = {
            "architecture": architecture,
            "os": "linux",
            "created": _rfc3339(epoch),
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [{"created": _rfc3339(epoch), "created_by": history_comment} for _ in layers],
        }
        config_blob = _bytes_blob(canonical_json(config_doc), workdir)
        manifest_doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {
                "mediaType": MEDIA_CONFIG,
                "digest": config_blob.digest,
                "size": config_blob.size,
            },
            "layers": [
                {
                    "mediaType": MEDIA_LAYER_GZIP,
                    "digest": layer.blob.digest,
                    "size": layer.blob.size,
                }
                for layer in layers
            ],
        }
        manifest_blob = _bytes_blob(canonical_json(manifest_doc), workdir)
        # One index entry per name: containerd's importer creates one image per entry.
        index_doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_blob.digest,
                    "size": manifest_blob.size,
                    "platform": {"architecture": architecture, "os": "linux"},
                    "annotations": {
                        ANNOTATION_CONTAINERD_NAME: name,
                        ANNOTATION_REF_NAME: _ref_tag(name),
                    },
                }
                for name in names
            ],
        }
        blobs: dict[str, Blob] = {}
        for blob in [config_blob, manifest_blob, *(layer.blob for layer in layers)]:
            blobs.setdefault(blob.digest, blob)
        fd, tmp_out = tempfile.mkstemp(prefix="image-", suffix=".tar", dir=workdir)
        with (
            os.fdopen(fd, "wb") as handle,
            tarfile.open(fileobj=handle, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}), epoch)
            _add_bytes(tar, "index.json", canonical_json(index_doc), epoch)
            _add_dir(tar, "blobs", epoch)
            _add_dir(tar, "blobs/sha256", epoch)
            for digest in sorted(blobs):
                blob = blobs[digest]
                info = tarfile.TarInfo(f"blobs/sha256/{digest.removeprefix('sha256:')}")
                info.size = blob.size
                info.mode = 0o644
                info.mtime = epoch
                with blob.path.open("rb") as src:
                    tar.addfile(info, src)
        # mkstemp creates 0600; an image archive is not secret.
        os.chmod(tmp_out, 0o644)
        os.replace(tmp_out, output)
    return PackResult(
        output=output,
        manifest_digest=manifest_blob.digest,
        config_digest=config_blob.digest,
        layers=layers,
        names=list(names),
    )


def _json_list(value: str) -> list[str]:
    parsed = json.loads(value)
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise argparse.ArgumentTypeError(f"expected a JSON list of strings, got {value!r}")
    return parsed


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Pack directories into a reproducible OCI image-layout tarball.")
    parser.add_argument(
        "--layer",
        action="append",
        type=Path,
        required=True,
        metavar="DIR",
        help="layer root directory; repeat for several layers, applied in order",
    )
    parser.add_argument(
        "--name",
        action="append",
        required=True,
        metavar="REF",
        help="image reference, e.g. localhost/paddock/pause:3.10; repeatable",
    )
    parser.add_argument("--output", "-o", type=Path, required=True, help="output .tar path")
    parser.add_argument("--entrypoint", type=_json_list, help="JSON list, e.g. '[\"/pause\"]'")
    parser.add_argument("--cmd", type=_json_list, help='JSON list, e.g. \'["sleep","infinity"]\'')
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--user", default="", help="user[:group], names or numbers")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--label", action="append", type=_key_value, default=[], metavar="K=V")
    parser.add_argument("--stop-signal", default="")
    parser.add_argument(
        "--created",
        type=int,
        default=None,
        help="timestamp for mtimes and 'created' (default: SOURCE_DATE_EPOCH or 0)",
    )
    parser.add_argument("--arch", default=None, help="OCI architecture (default: host)")
    parser.add_argument("--compress-level", type=int, default=6, choices=range(1, 10))
    parser.add_argument("--digest-file", type=Path, help="also write the manifest digest here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for env in args.env:
        _key_value(env)
    config = ImageConfig(
        entrypoint=args.entrypoint,
        cmd=args.cmd,
        env=list(args.env),
        user=args.user,
        workdir=args.workdir,
        labels=dict(args.label),
        stop_signal=args.stop_signal,
    )
    result = pack_image(
        layer_dirs=args.layer,
        config=config,
        names=args.name,
        output=args.output,
        created=args.created,
        arch=args.arch,
        compresslevel=args.compress_level,
    )
    if args.digest_file is not None:
        args.digest_file.write_text(result.manifest_digest + "\n")
    sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
