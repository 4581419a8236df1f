"""Jobs of ``audionets serve``: their files in one temporary folder, run one at a time.

Every upload gets a folder under the store's temporary root; its job runs on the store's one
worker thread (models are not shared between concurrent calls). The page polls a job by its
id; a job's result files are reachable only through random file ids mapped to server paths
here, so no path the client sends is ever opened. The uploaded file itself is deleted when its
job ends; a finished job's folder when more than ``keep_jobs`` newer jobs have finished, and
the whole root by :meth:`JobStore.close` (the server's shutdown).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from audionets.errors import AudionetsError

log = logging.getLogger("audionets.serve")


class Cancelled(Exception):
    """Raised in a job's progress callback when the server shuts down, to stop its work."""


@dataclass
class StoredFile:
    """A file the page may fetch: where it is, its media type, its name when downloaded."""

    path: Path
    media_type: str
    download_name: str


@dataclass
class Job:
    """One upload and its processing; ``state`` is queued, running, done or error."""

    id: str
    task: str  # "separate" or "classify"
    name: str  # the client's file name, for messages and download names only
    folder: Path
    upload: Path
    state: str = "queued"
    done: int = 0  # progress: chunks (separation) or windows (classification) done of total
    total: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    result: dict | None = None

    def public_text(self, text: str) -> str:
        """``text`` with the server's upload path replaced by the client's file name."""
        return " ".join(text.replace(str(self.upload), self.name).split())

    def to_json(self) -> dict:
        return {"id": self.id, "task": self.task, "name": self.name, "state": self.state,
                "progress": {"done": self.done, "total": self.total}, "error": self.error,
                "warnings": self.warnings, "result": self.result}


class JobStore:
    """Jobs, their files and the worker thread that runs them.

    Args:
        keep_jobs: finished jobs whose results stay available (older ones are deleted).
        max_pending: jobs that may wait or run at once; :meth:`submit` refuses more.
    """

    def __init__(self, keep_jobs: int = 16, max_pending: int = 8) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="audionets-serve-"))
        self.keep_jobs, self.max_pending = keep_jobs, max_pending
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._files: dict[str, StoredFile] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audionets-serve")

    def new_job(self, task: str, name: str = "upload") -> Job:
        """A job with a fresh folder; the upload goes to ``job.upload`` (no client name)."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir()
        return Job(id=job_id, task=task, name=name, folder=folder, upload=folder / "upload")

    def discard(self, job: Job) -> None:
        """Delete a job that was never submitted (a refused upload) with its folder."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def pending(self) -> int:
        with self._lock:
            return sum(job.state in ("queued", "running") for job in self._jobs.values())

    def submit(self, job: Job, work: Callable[[Job, Callable[[int, int], None]], dict]) -> None:
        """Queue ``work(job, progress) -> result`` on the worker thread.

        ``work`` raises :class:`~audionets.errors.AudionetsError` for bad input (its message,
        with the client's file name for the server path, becomes ``job.error``).
        """
        with self._lock:
            self._jobs[job.id] = job
        self._worker.submit(self._run, job, work)

    def _run(self, job: Job, work) -> None:
        def progress(done: int, total: int) -> None:
            if self._closing.is_set():
                raise Cancelled
            job.done, job.total = done, total

        try:
            if self._closing.is_set():
                raise Cancelled
            job.state = "running"
            job.result = work(job, progress)
            job.state = "done"
        except Cancelled:
            job.state, job.error = "error", "the server is shutting down"
        except AudionetsError as err:
            job.state, job.error = "error", job.public_text(str(err))
        except Exception:  # a bug: the traceback goes to the server's log, not to the page
            log.exception("job %s (%s) failed", job.id, job.name)
            job.state = "error"
            job.error = f"{job.name}: internal error; the server's log has the details"
        finally:
            job.upload.unlink(missing_ok=True)
            self._forget_old_jobs()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def add_file(self, job: Job, path: Path, media_type: str, download_name: str) -> str:
        """Make ``path`` (inside ``job.folder``) fetchable; returns its random file id."""
        file_id = secrets.token_urlsafe(16)
        with self._lock:
            self._files[file_id] = StoredFile(path, media_type, download_name)
        return file_id

    def file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def _forget_old_jobs(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
            for job in finished[:max(0, len(finished) - self.keep_jobs)]:
                del self._jobs[job.id]
                for file_id in [k for k, f in self._files.items() if f.path.is_relative_to(
                        job.folder)]:
                    del self._files[file_id]
                shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the running job at its next chunk, drop queued ones, delete every file.

        Closing twice is harmless."""
        self._closing.set()
        self._worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
