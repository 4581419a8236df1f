"""``audionets serve``: a local web page that separates and classifies uploaded audio files.

- :mod:`~audionets.serve.uploads`: one multipart upload streamed to disk under a size limit.
- :mod:`~audionets.serve.jobs`: uploads and results in one temporary folder, one worker
  thread, results served by opaque ids only.
- :mod:`~audionets.serve.figures`: spectrogram PNGs.
- :mod:`~audionets.serve.app`: the FastAPI application (the page, its JSON API, the files).
- ``static/``: the page (HTML, CSS, JavaScript; no build step, nothing fetched from elsewhere).

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart); nothing else in audionets
imports this package.
"""
