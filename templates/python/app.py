"""{{name}}: a Glint function in Python.

`handle` answers each request; `glint.handler` makes it the standard
wasi:http/incoming-handler that componentize-py builds, so the component runs unchanged
under Glint or `wasmtime serve`.
"""

import glint
from glint import config


def handle(request: glint.Request) -> glint.Response:
    # Lines on stdout land in `glint logs`; a prefix such as "ERROR:" sets the level.
    print(f"{{name}}: {request.path}", flush=True)
    greeting = config.get("GREETING") or "Hello"
    return glint.Response(f"{greeting} from {{name}} (Python)!\n")


# componentize-py looks for this name in the app module.
IncomingHandler = glint.handler(handle)
