"""The single-owner lock of a job directory on an object store (``s3://``).

S3 has no exclusive create of a file nor a rename, but it has conditional writes: a PUT
with ``If-None-Match: *`` succeeds only if the object does not exist, and one with
``If-Match: <etag>`` only if the object is still the version read. The lock is the object
``<parent>/.<name>.curate-lock`` beside the job directory (the same name and owner record
as a local lock, :mod:`workers.output_lock`):

* **take**: PUT with ``If-None-Match: *``; exactly one of two racing runs succeeds;
* **keep**: the heartbeat is a PUT with ``If-Match`` of the holder's last ETag, so a run
  whose lock was taken over (presumed dead) never writes into the new holder's lock;
* **take over** a stale lock (heartbeat older than ``CURATE_LOCK_STALE_S``, or a holder
  process of this host that is gone): PUT with ``If-Match`` of the stale version's ETag;
  of two takers only one matches;
* **release**: delete it if it is still this run's.

A second run on the same job directory is refused with :class:`LockHeld`, naming the holder.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from curate import jobfs
from workers.output_lock import LOCK_SUFFIX, LockHeld, PathLocks, _env_seconds, is_stale


def remote_lock_object(job_dir: jobfs.RemotePath) -> jobfs.RemotePath:
    return job_dir.parent / f".{job_dir.name}{LOCK_SUFFIX}"


def _client(scheme: str):
    import botocore.session

    if scheme != "s3":
        raise ValueError(f"no conditional writes for {scheme}:// (only s3://)")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name=region)


def _failed_precondition(e: Exception) -> bool:
    code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class RemoteJobLock:
    """The lock of one object-store job directory for one run (a context manager)."""

    def __init__(self, job_dir: jobfs.RemotePath, owner: dict[str, Any]):
        self.target = job_dir
        obj = remote_lock_object(job_dir)
        self.bucket, _, self.key = obj.key.partition("/")
        self.owner = owner
        self.etag: str | None = None
        self._s3 = _client(job_dir.scheme)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        import time

        return json.dumps({**self.owner, "heartbeat": time.time()}).encode()

    def _put(self, **cond: str) -> str:
        return self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._record(), **cond)["ETag"]

    def _read(self) -> tuple[dict[str, Any] | None, str | None]:
        try:
            r = self._s3.get_object(Bucket=self.bucket, Key=self.key)
        except self._s3.exceptions.NoSuchKey:
            return None, None
        try:
            return json.loads(r["Body"].read()), r["ETag"]
        except ValueError:
            return {}, r["ETag"]

    def acquire(self) -> RemoteJobLock:
        for _ in range(5):
            try:
                self.etag = self._put(IfNoneMatch="*")
                break
            except Exception as e:  # noqa: BLE001 - botocore's ClientError
                if not _failed_precondition(e):
                    raise
            holder, etag = self._read()
            if etag is None:
                continue  # released meanwhile: try to take it again
            mine = bool(holder) and all(holder.get(k) == v for k, v in self.owner.items())
            # an unreadable lock object is foreign (a PUT is atomic, ours are whole): stale
            if not mine and holder and not is_stale(holder, self.target):
                raise LockHeld(self.target, holder)
            try:
                self.etag = self._put(IfMatch=etag)  # only one taker matches the stale version
                break
            except Exception as e:  # noqa: BLE001
                if not _failed_precondition(e):
                    raise
        else:
            raise LockHeld(self.target, self._read()[0] or {})
        interval = _env_seconds("CURATE_LOCK_HEARTBEAT_S", 10.0)
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="curate-remote-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.etag = self._put(IfMatch=self.etag or "")
            except Exception as e:  # noqa: BLE001
                if _failed_precondition(e):
                    return  # taken over: never write into another run's lock
                # a transient error: the next beat retries

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder, etag = self._read()
        if etag is not None and etag == self.etag:
            self._s3.delete_object(Bucket=self.bucket, Key=self.key)
        self.etag = None

    def __enter__(self) -> RemoteJobLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def job_dir_lock(job_dir: jobfs.RemotePath, locks: PathLocks) -> RemoteJobLock:
    """The object-store lock of ``job_dir``, with the same owner record as ``locks``."""
    return RemoteJobLock(job_dir, locks.owner)
