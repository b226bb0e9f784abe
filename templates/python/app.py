"""{{name}}: a Glint function, a standard wasi:http/incoming-handler built by componentize-py.

It runs unchanged under Glint or `wasmtime serve`.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        # Lines on stdout land in `glint logs`; a prefix such as "ERROR:" sets the level.
        print(f"{{name}}: {path}", flush=True)

        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(b"Hello from {{name}} (Python)!\n")
        OutgoingBody.finish(body, None)
