"""Receive one file of a ``multipart/form-data`` request body, streamed to disk.

The size limit is enforced while the body arrives: reading stops at the first chunk that takes
the file over the limit, so a too-large upload never reaches memory or disk in full. Parsing is
python-multipart's streaming parser; the client's file name is returned for display only and
never becomes part of a server path.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import AsyncIterator

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from audionets.errors import AudioError

#: Bytes of form overhead (boundaries, part headers, small fields) allowed beyond the file.
FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(AudioError):
    """The uploaded file is larger than the server's limit."""


def too_large_message(name: str, limit_bytes: int) -> str:
    return (f"{name}: larger than this server's upload limit of {limit_bytes / 2**20:g} MB; "
            "cut or compress the file, or restart the server with a larger --max-upload-mb")


def display_name(raw: bytes | None) -> str:
    """The last path component of a client's file name, printable, at most 120 characters."""
    text = (raw or b"").decode("utf-8", errors="replace")
    name = PureWindowsPath(PurePosixPath(text).name).name  # browsers of old sent whole paths
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:120]
    return name if name.strip(".") else "upload"


class _FilePart:
    """python-multipart callbacks that write the first part named ``field`` with a file name
    to ``dest`` and count its bytes (nothing else of the body is kept)."""

    def __init__(self, dest: Path, field: str) -> None:
        self.dest, self.field = dest, field.encode()
        self.name: str | None = None  # the client's file name once the part is found
        self.size = 0
        self.finished = False
        self._writing = False
        self._handle = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition"))
        if self.name is None and params.get(b"name") == self.field and b"filename" in params:
            self.name = display_name(params[b"filename"])
            self._handle = open(self.dest, "wb")  # noqa: SIM115  (closed by close())
            self._writing = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._writing:
            self._handle.write(data[start:end])
            self.size += end - start

    def _part_end(self) -> None:
        if self._writing:
            self._writing, self.finished = False, True
            self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def receive_file(
    body: AsyncIterator[bytes], content_type: str | None, dest: Path, max_bytes: int,
    field: str = "file",
) -> str:
    """Write the form field ``field``'s file of a multipart body to ``dest``; its display name.

    Args:
        body: the request body as it arrives (``request.stream()``).
        content_type: the request's Content-Type header (carries the multipart boundary).
        dest: where the file's bytes go (the caller removes it on error).
        max_bytes: the largest file accepted.

    Raises:
        UploadTooLarge: as soon as the file (or the whole body) exceeds the limit; the rest of
            the body is not read.
        AudioError: a body that is not multipart form data, is cut short, or has no such file.
    """
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise AudioError(f"the upload must be multipart/form-data with the file in the form "
                         f"field {field!r}")
    part = _FilePart(dest, field)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD:
                raise UploadTooLarge(too_large_message(part.name or "the upload", max_bytes))
            parser.write(chunk)
            if part.size > max_bytes:
                raise UploadTooLarge(too_large_message(part.name, max_bytes))
        parser.finalize()
    except FormParserError as err:  # a malformed body
        raise AudioError(f"the upload is not valid multipart form data ({err})") from None
    finally:
        part.close()
    if part.name is None:
        raise AudioError(f"the upload holds no file in the form field {field!r}")
    if not part.finished:
        raise AudioError(f"{part.name}: the upload was cut short; send the file again")
    return part.name
