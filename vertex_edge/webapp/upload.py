"""Reading a form upload into memory, with caps checked while it streams in.

Starlette's own form parsing spools any file over 1 MB to a temporary file in ``/tmp`` (in the
chart, a small memory-backed volume: a burst of uploads filled it and got a misleading 400) and
writes each chunk through its 40-thread pool. Here the one image is kept in memory as it arrives
(no temporary file; the number of uploads in progress is bounded by
:class:`~vertex_edge.webapp.limits.Admission`), and the body is refused as soon as it passes a
cap: the image over ``max_file_bytes`` (:class:`~vertex_edge.webapp.logs.BodyTooLarge`, 413),
more than a few parts or a field over 1 KB (:class:`FormError`, 422).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from vertex_edge.webapp.limits import Deadline, DeadlineExceeded
from vertex_edge.webapp.logs import BodyTooLarge

#: parts a form may have (the page sends one: ``file`` or ``sample``)
MAX_PARTS = 8
#: bytes of a form field other than the file (a sample id is a few bytes)
MAX_FIELD_BYTES = 1024
#: bytes of a urlencoded body (no file can come that way)
MAX_URLENCODED_BYTES = 16 * 1024


class FormError(ValueError):
    """The body is not the form this route takes; the message says what was expected."""


@dataclass
class UploadForm:
    """The fields of a form and the one file it carried (``None``: no file part)."""

    fields: dict[str, str] = field(default_factory=dict)
    file: bytes | bytearray | None = None
    filename: str | None = None


async def read_form(
    stream: AsyncIterator[bytes], content_type: str | None, *, file_field: str, max_file_bytes: int, deadline: Deadline
) -> UploadForm:
    """The form in ``stream`` (``multipart/form-data`` or urlencoded), within ``deadline``
    (:class:`DeadlineExceeded` with stage ``upload`` past it)."""
    media, params = parse_options_header(content_type or "")
    try:
        async with asyncio.timeout(deadline.remaining()):
            if media == b"multipart/form-data":
                boundary = params.get(b"boundary")
                if not boundary:
                    raise FormError("the multipart/form-data body has no boundary")
                return await _multipart(stream, boundary, file_field, max_file_bytes)
            if media in (b"application/x-www-form-urlencoded", b""):  # no type: an empty form
                return await _urlencoded(stream)
    except TimeoutError:
        raise DeadlineExceeded("upload", deadline.seconds) from None
    got = media.decode("latin-1")
    raise FormError(f"the body is {got}; send multipart/form-data with the image in field '{file_field}'")


async def _urlencoded(stream: AsyncIterator[bytes]) -> UploadForm:
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_URLENCODED_BYTES:
            raise FormError(f"the form is over {MAX_URLENCODED_BYTES // 1024} KB; send the image as multipart/form-data")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PARTS)
    except (UnicodeDecodeError, ValueError):
        raise FormError(f"the form is not valid (at most {MAX_PARTS} UTF-8 fields)") from None
    return UploadForm(fields=dict(pairs))


class _Collector:
    """python-multipart callbacks: the file part into one growing buffer, fields capped."""

    def __init__(self, file_field: str, max_file_bytes: int) -> None:
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.form = UploadForm()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._is_file = False
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self._add_header(data[start:end], b""),
            "on_header_value": lambda data, start, end: self._add_header(b"", data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def _add_header(self, name: bytes, value: bytes) -> None:
        self._header_name += name
        self._header_value += value
        if len(self._header_name) + len(self._header_value) > MAX_FIELD_BYTES:
            raise FormError(f"a part's headers are over {MAX_FIELD_BYTES} bytes")

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise FormError(f"the form has over {MAX_PARTS} parts; send one image in field '{self.file_field}'")
        self._disposition, self._name, self._is_file, self._data = b"", None, False, bytearray()

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise FormError("a part of the form has no name (Content-Disposition: form-data; name=...)")
        self._name = options[b"name"].decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file and self._name == self.file_field:
            if self.form.file is not None:
                raise FormError(f"the form has more than one file in field '{self.file_field}'; send one image")
            self.form.filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file and self._name != self.file_field:
            return  # another file field: not kept
        self._data += data[start:end]
        if self._is_file:
            if len(self._data) > self.max_file_bytes:
                raise BodyTooLarge(self.max_file_bytes)
        elif len(self._data) > MAX_FIELD_BYTES:
            raise FormError(f"field '{self._name}' is over {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._name is None:
            return
        if self._is_file:
            if self._name == self.file_field:
                self.form.file = self._data  # no copy: decoding reads it as it is
        else:
            self.form.fields[self._name] = self._data.decode("utf-8", "replace")
        self._data = bytearray()


async def _multipart(stream: AsyncIterator[bytes], boundary: bytes, file_field: str, max_file_bytes: int) -> UploadForm:
    collector = _Collector(file_field, max_file_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise FormError("the multipart/form-data body is malformed") from None
    return collector.form
