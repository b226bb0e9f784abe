"""HTTP in and out over wasi:http: a handler that is a plain function, and `fetch`.

    import glint

    def handle(request: glint.Request) -> glint.Response:
        upstream = glint.fetch("https://example.com/")
        return glint.Response(f"upstream said {upstream.status}\\n")

    IncomingHandler = glint.handler(handle)  # componentize-py looks for this name

Outbound calls go only where the manifest's `[outbound]` allow-list lets them; a denied or
failed call raises `FetchError` carrying the wasi:http error code.
"""

import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, types
from wit_world.imports.streams import StreamError_Closed

Body = bytes | str | None

# blocking-write-and-flush takes at most 4096 bytes a call.
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024

_METHODS = {
    "GET": types.Method_Get,
    "HEAD": types.Method_Head,
    "POST": types.Method_Post,
    "PUT": types.Method_Put,
    "DELETE": types.Method_Delete,
    "CONNECT": types.Method_Connect,
    "OPTIONS": types.Method_Options,
    "TRACE": types.Method_Trace,
    "PATCH": types.Method_Patch,
}
_METHOD_NAMES = {cls: name for name, cls in _METHODS.items()}


class _Message:
    """What requests and responses share: a body read whole, as bytes, text or JSON."""

    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Request(_Message):
    """An incoming request. `path` excludes the function's route prefix and the query;
    `headers` has lower-case names, repeated headers joined with ", "."""

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    @property
    def params(self) -> dict[str, str]:
        """The query's parameters, percent-decoded; the last of a repeated name wins."""
        return dict(parse_qsl(self.query, keep_blank_values=True))


class Response(_Message):
    """A response: returned by a handler, or by `fetch`.

    A str body is sent as UTF-8, as text/plain unless `headers` names a content-type.
    """

    def __init__(
        self,
        body: Body = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ):
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        if isinstance(body, str):
            self.headers.setdefault("content-type", "text/plain; charset=utf-8")
        self.body = _as_bytes(body)


class FetchError(Exception):
    """An outbound request failed.

    `code` is the wasi:http error-code case, e.g. `HTTP-request-denied` when the
    manifest's `[outbound]` allow-list does not let the call out; `detail` is its payload.
    """

    def __init__(self, method: str, url: str, code: str, detail: Any = None):
        self.method = method
        self.url = url
        self.code = code
        self.detail = detail
        shown = code if detail is None else f"{code} ({detail})"
        super().__init__(f"{shown}: {method} {url}")


def fetch(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: Body = None,
) -> Response:
    """Sends a request and waits for the whole response.

    Raises `FetchError` when the request fails, and ValueError for headers wasi:http
    does not allow a guest to set (such as `host`).
    """
    method = method.upper()

    def failed(code: Any) -> FetchError:
        return FetchError(method, url, _code_name(code), getattr(code, "value", None))

    request = _outgoing_request(url, method, headers or {}, failed)
    request_body = request.body()
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise failed(e.value) from None
    try:
        _write_all(request_body, _as_bytes(body))
    except Err:
        pass  # The host stopped taking the body; the response says why.

    with future:
        with future.subscribe() as ready:
            ready.block()
        # Ready, and taken here for the first time: Ok(the request's result).
        result = future.get().value
    if isinstance(result, Err):
        raise failed(result.value)
    with result.value as incoming:
        with incoming.headers() as fields:
            response_headers = _headers(fields)
        status = incoming.status()
        try:
            data = _read_all(incoming.consume())
        except _BodyError as e:
            raise failed(e.code or types.ErrorCode_HttpResponseIncomplete()) from None
    return Response(data, status, response_headers)


def handler(handle: Callable[[Request], Response]) -> type:
    """Makes `handle(request) -> Response` the function's wasi:http incoming handler.

    Assign the result to `IncomingHandler` in the app module. An exception in `handle`
    is logged with its traceback and answered with a 500.
    """

    class IncomingHandler(exports.IncomingHandler):
        def handle(
            self, request: types.IncomingRequest, response_out: types.ResponseOutparam
        ) -> None:
            _respond(response_out, _run(handle, request))

    return IncomingHandler


def _run(handle: Callable[[Request], Response], incoming: types.IncomingRequest) -> Response:
    try:
        request = _request(incoming)
    except _BodyError:
        return Response("cannot read the request body\n", 400)
    try:
        return handle(request)
    except Exception:
        # Lines on stderr land in `glint logs`; the ERROR: prefix sets the level.
        print(f"ERROR: {traceback.format_exc()}", file=sys.stderr, flush=True)
        return Response("internal error\n", 500)


def _request(incoming: types.IncomingRequest) -> Request:
    method = incoming.method()
    path, _, query = (incoming.path_with_query() or "/").partition("?")
    with incoming.headers() as fields:
        headers = _headers(fields)
    body = _read_all(incoming.consume())
    # Method_Other carries its name; the others are known by their type.
    name = _METHOD_NAMES.get(type(method)) or method.value
    return Request(name, path, query, headers, body)


def _respond(response_out: types.ResponseOutparam, response: Response) -> None:
    outgoing = types.OutgoingResponse(_fields(response.headers))
    outgoing.set_status_code(response.status)
    body = outgoing.body()
    types.ResponseOutparam.set(response_out, Ok(outgoing))
    _write_all(body, response.body)


def _outgoing_request(
    url: str,
    method: str,
    headers: Mapping[str, str],
    failed: Callable[[Any], FetchError],
) -> types.OutgoingRequest:
    parts = urlsplit(url)
    schemes = {"http": types.Scheme_Http(), "https": types.Scheme_Https()}
    if parts.scheme not in schemes or not parts.netloc:
        raise failed(types.ErrorCode_HttpRequestUriInvalid())
    request = types.OutgoingRequest(_fields(headers))
    request.set_method(_METHODS[method]() if method in _METHODS else types.Method_Other(method))
    request.set_scheme(schemes[parts.scheme])
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    return request


class _BodyError(Exception):
    """A body stream failed; `code` is the wasi:http error-code it maps to, if any."""

    def __init__(self, code: types.ErrorCode | None):
        self.code = code


def _read_all(body: types.IncomingBody) -> bytes:
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise _BodyError(types.http_error_code(e.value.value)) from None
    # The stream, a child of the body, is dropped above, as finish requires.
    with types.IncomingBody.finish(body):
        pass
    return b"".join(chunks)


def _write_all(body: types.OutgoingBody, data: bytes) -> None:
    with body.write() as stream:
        for start in range(0, len(data), _WRITE_CHUNK):
            stream.blocking_write_and_flush(data[start : start + _WRITE_CHUNK])
    types.OutgoingBody.finish(body, None)


def _headers(fields: types.Fields) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in fields.entries():
        text = value.decode("utf-8", "replace")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


def _fields(headers: Mapping[str, str]) -> types.Fields:
    try:
        return types.Fields.from_list([(k.lower(), v.encode()) for k, v in headers.items()])
    except Err as e:
        raise ValueError(f"headers {list(headers)} are not allowed: {e.value}") from None


def _as_bytes(body: Body) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else bytes(body)


# The WIT spells these words in capitals: `HTTP-request-URI-invalid`, `DNS-timeout`.
_CAPITALISED = {"dns", "tls", "http", "uri", "ip"}


def _code_name(code: Any) -> str:
    """The WIT name of a wasi:http error-code case, e.g. `HTTP-request-denied`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower().split()
    return "-".join(w.upper() if w in _CAPITALISED else w for w in words)
