"""Glint's Python SDK: plain functions over the WASI interfaces a Glint node offers.

- `glint.http`: `handler(fn)` turns `fn(Request) -> Response` into the `IncomingHandler`
  componentize-py looks for; `fetch(url)` makes an outbound request.
- `glint.kv`: the stores named in the manifest's `[kv] stores` (wasi:keyvalue).
- `glint.config`: the function's config values and secrets (wasi:config/store).

It wraps the bindings componentize-py generates (`wit_world`), so it works only inside a
component built by `glint build`; a function written with it runs on any host that offers
the same interfaces.
"""

from . import config, kv
from .http import FetchError, Request, Response, fetch, handler

__all__ = ["FetchError", "Request", "Response", "config", "fetch", "handler", "kv"]
