"""The FastAPI application of ``audionets serve``.

Routes (all JSON errors are ``{"error": "<one line>"}``)::

    GET  /                      the page (static/index.html; app.js and style.css under /static)
    GET  /api/info              the models and the limits
    POST /api/separate          multipart form, field "file": 202 {"job": id}; 413 too large,
    POST /api/classify          422 not audio / too long, 503 busy
    GET  /api/jobs/{id}         {"state": queued|running|done|error, "progress", "error",
                                 "warnings", "result"}
    GET  /api/files/{id}        a result file (WAV or PNG); ?download=1 as an attachment

The work goes through the library's own :class:`~audionets.inference.Separator` and
:class:`~audionets.inference.Classifier` file methods, so resampling, long files (chunked,
bounded memory) and bad input behave as in ``audionets separate`` / ``classify``.
"""

from __future__ import annotations

import warnings
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from audionets import audio
from audionets.errors import AudioError
from audionets.serve.jobs import Job, JobStore
from audionets.serve.uploads import FORM_OVERHEAD, UploadTooLarge, receive_file, too_large_message

STATIC = Path(__file__).parent / "static"
# The page loads nothing from elsewhere; blob: URLs play the picked file before it is uploaded.
PAGE_POLICY = ("default-src 'self'; img-src 'self'; media-src 'self' blob:; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Service:
    """What the routes share: the models, the limits, the job store.

    Args:
        separator: a :class:`~audionets.inference.Separator`.
        classifier: a :class:`~audionets.inference.Classifier`.
        max_upload_bytes: the largest uploaded file accepted.
        max_seconds: the longest audio accepted.
        top_k: labels shown by the classify tab.
        store: where jobs and their files live (a new :class:`JobStore` by default).
    """

    def __init__(self, separator, classifier, max_upload_bytes: int, max_seconds: float,
                 top_k: int = 5, store: JobStore | None = None) -> None:
        self.separator, self.classifier = separator, classifier
        self.max_upload_bytes, self.max_seconds, self.top_k = max_upload_bytes, max_seconds, top_k
        self.store = store or JobStore()

    def info(self) -> dict:
        return {
            "separator": {"source": self.separator.source, "sample_rate":
                          self.separator.sample_rate, "num_sources": self.separator.num_sources},
            "classifier": {"source": self.classifier.source, "sample_rate":
                           self.classifier.sample_rate, "labels": len(self.classifier.labels)},
            "max_upload_bytes": self.max_upload_bytes, "max_seconds": self.max_seconds,
            "top_k": self.top_k,
        }

    def check_audio(self, job: Job) -> None:
        """AudioError (with the client's file name) for a file that is not audio or too long."""
        try:
            meta = audio.info(job.upload)
        except AudioError as err:
            raise AudioError(job.public_text(str(err))) from None
        if meta.duration > self.max_seconds:
            raise AudioError(
                f"{job.name}: {meta.duration:.1f} s long, more than this server's limit of "
                f"{self.max_seconds:g} s; cut the file or restart the server with a larger "
                "--max-seconds")

    def separate(self, job: Job, progress) -> dict:
        from audionets.serve.figures import save_spectrograms

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            paths = self.separator.separate_file(job.upload, out_dir=job.folder,
                                                 progress=progress)
        job.warnings = own_warnings(job, caught)
        pictures = {job.folder / "mixture.png": job.upload}
        save_spectrograms({**pictures, **{path.with_suffix(".png"): path for path in paths}})
        meta = audio.info(job.upload)
        stem = Path(job.name).stem or "upload"
        add = self.store.add_file
        return {
            "sample_rate": meta.sample_rate,
            "seconds": meta.duration,
            "mixture": {"spectrogram": add(job, job.folder / "mixture.png", "image/png",
                                           f"{stem}_mixture.png")},
            "sources": [
                {"name": f"source {k}",
                 "audio": add(job, path, "audio/wav", f"{stem}_s{k}.wav"),
                 "spectrogram": add(job, path.with_suffix(".png"), "image/png",
                                    f"{stem}_s{k}.png")}
                for k, path in enumerate(paths, start=1)
            ],
        }

    def classify(self, job: Job, progress) -> dict:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            top = self.classifier.classify_file(job.upload, top_k=self.top_k, progress=progress)
        job.warnings = own_warnings(job, caught)
        return {"predictions": [{"label": label, "probability": p} for label, p in top]}

    async def upload(self, request: Request, task: str) -> JSONResponse:
        """Receive the file, check it, queue its job; ``202 {"job": id}`` or an error."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_upload_bytes + FORM_OVERHEAD:
            return error(413, too_large_message("the upload", self.max_upload_bytes))
        if self.store.pending() >= self.store.max_pending:
            return error(503, f"the server is busy ({self.store.max_pending} files waiting or "
                              "running); try again when one has finished")
        job = self.store.new_job(task)
        try:
            job.name = await receive_file(request.stream(), request.headers.get("content-type"),
                                          job.upload, self.max_upload_bytes)
            await run_in_threadpool(self.check_audio, job)
        except UploadTooLarge as err:
            self.store.discard(job)
            return error(413, str(err))
        except AudioError as err:
            self.store.discard(job)
            return error(422, str(err))
        except BaseException:  # the client went away, the server stops: no upload is left
            self.store.discard(job)
            raise
        self.store.submit(job, self.separate if task == "separate" else self.classify)
        return JSONResponse({"job": job.id}, status_code=202)


def own_warnings(job: Job, caught: list) -> list[str]:
    """The UserWarnings about ``job``'s upload (silence, ...), with the client's file name."""
    return [job.public_text(str(item.message)) for item in caught
            if issubclass(item.category, UserWarning)
            and str(item.message).startswith(str(job.upload))]


def create_app(service: Service, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The application serving ``service``; ``allowed_hosts`` are the Host header values
    accepted (None: any), which keeps pages of other sites from reaching a local server
    through DNS rebinding. The service's job store is closed when the application stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            await run_in_threadpool(service.store.close)

    app = FastAPI(title="audionets", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY,
                                     "Cache-Control": "no-store"})

    @app.get("/api/info")
    def info() -> dict:
        return service.info()

    @app.post("/api/separate")
    async def separate(request: Request) -> JSONResponse:
        return await service.upload(request, "separate")

    @app.post("/api/classify")
    async def classify(request: Request) -> JSONResponse:
        return await service.upload(request, "classify")

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str):
        found = service.store.get(job_id)
        if found is None:
            return error(404, "no such job; results are kept for the latest "
                              f"{service.store.keep_jobs} files until the server stops")
        return found.to_json()

    @app.get("/api/files/{file_id}")
    def file(file_id: str, download: bool = False):
        stored = service.store.file(file_id)
        if stored is None or not stored.path.is_file():
            return error(404, "no such file; results are kept for the latest "
                              f"{service.store.keep_jobs} files until the server stops")
        return FileResponse(stored.path, media_type=stored.media_type,
                            filename=stored.download_name if download else None,
                            headers={"X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-store"})

    return app
