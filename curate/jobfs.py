"""Job-directory storage: one path type for a local directory or an object-store prefix.

:func:`path` turns a job path (``/runs/x``, ``runs/x``, ``s3://bucket/prefix/x``) into a
:class:`pathlib.Path` for a local one and a :class:`RemotePath` for a URI. ``RemotePath``
has the part of the ``pathlib`` API the job code uses (``/``, ``name``, ``stem``,
``parent``, ``exists``, ``glob``, ``iterdir``, ``read_*``/``write_*``, ``unlink``,
``mkdir``), over a :mod:`pyarrow.fs` filesystem resolved from the URI (an fsspec one for a
scheme pyarrow lacks). For ``s3://`` it is configured the AWS SDK's way
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``). ``str()`` of a remote path is its URI, which
``pyarrow.parquet`` opens directly. It has no ``__fspath__``: ``Path(remote)`` fails
loudly instead of silently turning ``s3://b/k`` into the local path ``s3:/b/k``.

Atomicity. Local writes go to a temporary name and are renamed. An object store has no
rename, but a single PUT is atomic (an object is absent or whole; a killed upload leaves
nothing). So a remote write is one PUT of a file first written completely to this
process's local spill file (:func:`spill_file`), and what several objects make
together is trusted only once a small marker object that lists them or vouches for them
(a completion record, ``state.json``, ``_SUCCESS``) has been PUT after them.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs

_FS_LOCK = threading.Lock()
_FS_CACHE: dict[tuple, pafs.FileSystem] = {}
_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
AWS_ENV_KEYS = _ENV_KEYS
"""The environment variables that configure object-store access (forwarded to Ray workers)."""


def is_remote(p: Any) -> bool:
    """True for a URI (``s3://...``), False for a local path (``file://`` counts as local)."""
    s = str(p)
    return "://" in s and not s.startswith("file://")


def _filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    key = (scheme, bucket, *(os.environ.get(k) for k in _ENV_KEYS))
    with _FS_LOCK:
        fs = _FS_CACHE.get(key)
        if fs is None:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            if scheme == "s3":
                region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                if not region:
                    region = "us-east-1" if endpoint else pafs.resolve_s3_region(bucket)
                # delayed open: a write is one request fewer (no open round trip)
                fs = pafs.S3FileSystem(endpoint_override=endpoint, region=region, allow_delayed_open=True)
            else:
                try:
                    fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
                except pa.ArrowInvalid:  # a scheme pyarrow lacks (memory://, ...): through fsspec
                    import fsspec

                    fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))
            _FS_CACHE[key] = fs
        return fs


class RemotePath:
    """An object-store path (``scheme://bucket/key``) with a pathlib-like API."""

    __slots__ = ("scheme", "key")

    def __init__(self, uri: str):
        scheme, _, rest = str(uri).partition("://")
        self.scheme = scheme
        self.key = str(PurePosixPath(rest.strip("/"))) if rest.strip("/") else ""

    # -- names --------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __lt__(self, other: RemotePath) -> bool:
        return str(self) < str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(f"{self}/{str(part).strip('/')}")

    def joinpath(self, *parts: str) -> RemotePath:
        out = self
        for p in parts:
            out = out / p
        return out

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> RemotePath:
        return RemotePath(f"{self.scheme}://{PurePosixPath(self.key).parent}")

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def resolve(self) -> RemotePath:
        return self

    def expanduser(self) -> RemotePath:
        return self

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme, self.key.split("/", 1)[0])

    # -- queries ------------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.key)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def size(self) -> int:
        return int(self._info().size or 0)

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(self.key, allow_not_found=True, recursive=recursive)
        return self.fs.get_file_info(sel)

    def iterdir(self) -> Iterator[RemotePath]:
        for info in sorted(self._list(False), key=lambda i: i.path):
            yield RemotePath(f"{self.scheme}://{info.path}")

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """Entries whose path relative to this one matches ``pattern`` (``*`` stays within a
        segment, as in pathlib); sorted."""
        depth = pattern.count("/") + 1
        infos = self._list(depth > 1)
        n = len(self.key) + 1
        for info in sorted(infos, key=lambda i: i.path):
            rel = info.path[n:]
            segs = rel.split("/")
            if len(segs) == depth and all(fnmatch.fnmatchcase(a, b) for a, b in zip(segs, pattern.split("/"))):
                yield RemotePath(f"{self.scheme}://{info.path}")

    # -- reads and writes ---------------------------------------------------------------
    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.key) as f:
                return f.read()
        except OSError as e:
            if not self.exists():
                raise FileNotFoundError(str(self)) from e
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: the object appears whole or not at all."""
        with self.fs.open_output_stream(self.key) as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def open(self, mode: str = "rb"):
        if "r" in mode:
            return self.fs.open_input_file(self.key)
        return self.fs.open_output_stream(self.key)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.key)
        except OSError:
            if self.exists():
                raise
            if not missing_ok:
                raise FileNotFoundError(str(self)) from None

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """A no-op: object-store prefixes exist once an object is under them."""

    def upload(self, local: str | Path) -> None:
        """PUT a complete local file as this object."""
        pafs.copy_files(str(local), self.key, destination_filesystem=self.fs)


JobPath = Path | RemotePath


def path(p: Any) -> JobPath:
    """A job path: :class:`RemotePath` for a URI, else a local :class:`pathlib.Path`."""
    if isinstance(p, (Path, RemotePath)):
        return p
    s = str(p)
    if is_remote(s):
        return RemotePath(s)
    return Path(s.removeprefix("file://"))


def resolve(p: Any) -> JobPath:
    """:func:`path`, absolute for a local one."""
    out = path(p)
    return out.resolve() if isinstance(out, Path) else out


def rmtree(p: Any) -> None:
    """Delete a directory (or prefix) and everything under it; missing is fine."""
    p = path(p)
    if isinstance(p, Path):
        shutil.rmtree(p, ignore_errors=True)
        return
    try:
        p.fs.delete_dir(p.key)
    except OSError:
        if p.exists():  # missing is fine, a failed delete is not
            raise


def replace(src: Any, dst: Any) -> None:
    """Move one file (a rename locally; a copy and a delete on an object store)."""
    src, dst = path(src), path(dst)
    if isinstance(src, Path) and isinstance(dst, Path):
        os.replace(src, dst)
        return
    if isinstance(src, RemotePath) and isinstance(dst, RemotePath) and src.fs is dst.fs:
        src.fs.move(src.key, dst.key)
        return
    copy_file(src, dst)
    src.unlink(missing_ok=True)


def copy_file(src: Any, dst: Any) -> None:
    """Copy one file between any two job paths (a remote destination gets one PUT)."""
    src, dst = path(src), path(dst)
    if isinstance(dst, Path):
        dst.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, Path) and isinstance(dst, Path):
        shutil.copyfile(src, dst)
        return
    sfs, skey = (src.fs, src.key) if isinstance(src, RemotePath) else (pafs.LocalFileSystem(), str(src))
    dfs, dkey = (dst.fs, dst.key) if isinstance(dst, RemotePath) else (pafs.LocalFileSystem(), str(dst))
    pafs.copy_files(skey, dkey, source_filesystem=sfs, destination_filesystem=dfs)


def mtime(p: Any) -> float:
    """Modification time (seconds since the epoch); ``FileNotFoundError`` if missing."""
    p = path(p)
    if isinstance(p, Path):
        return p.stat().st_mtime
    info = p._info()
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(str(p))
    return info.mtime.timestamp() if info.mtime is not None else 0.0


def size(p: Any) -> int:
    p = path(p)
    return p.stat().st_size if isinstance(p, Path) else p.size()


def spill_file(name: str) -> Path:
    """A fresh local file (in the system temp dir) where a remote write of ``name`` is
    completed before its PUT; :func:`put_spilled` deletes it."""
    fd, tmp = tempfile.mkstemp(prefix=f"curate-spill-{Path(name).name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def put_spilled(tmp: Path, dst: RemotePath) -> None:
    """PUT a completed spill file as ``dst`` and delete it locally."""
    try:
        dst.upload(tmp)
    finally:
        tmp.unlink(missing_ok=True)


def save_npy(p: Any, arr: Any) -> None:
    """``numpy.save`` to a job path (one PUT for a remote one)."""
    import io

    import numpy as np

    p = path(p)
    if isinstance(p, Path):
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, arr)
        return
    buf = io.BytesIO()
    np.save(buf, arr)
    p.write_bytes(buf.getvalue())


def load_npy(p: Any) -> Any:
    """``numpy.load`` of a job path (an ``.npy`` array or an ``.npz`` archive)."""
    import io

    import numpy as np

    p = path(p)
    return np.load(p if isinstance(p, Path) else io.BytesIO(p.read_bytes()))


def save_npz(p: Any, **arrays: Any) -> None:
    """``numpy.savez`` to a job path, atomically (a rename locally, one PUT remotely)."""
    import io

    import numpy as np

    p = path(p)
    if isinstance(p, Path):
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f"{p.stem}.{os.getpid()}.{threading.get_ident()}.part.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, p)
        return
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    p.write_bytes(buf.getvalue())
