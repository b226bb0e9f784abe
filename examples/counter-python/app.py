"""counter-py: counts hits per key in the KV store `counters`.

`POST /<key>` adds one atomically and answers the new count; `GET /<key>` answers the
count, 0 for a key never counted. `/` counts under the key `hits`.
"""

import glint
from glint import kv


def handle(request: glint.Request) -> glint.Response:
    key = request.path.removeprefix("/") or "hits"
    try:
        counters = kv.open("counters")
        if request.method == "POST":
            # One atomic step on the host, so concurrent requests never lose a count.
            count = counters.increment(key)
        elif request.method == "GET":
            count = int(counters.get(key) or 0)
        else:
            return glint.Response("use GET or POST\n", 405, {"allow": "GET, POST"})
    except kv.KvError as e:
        return glint.Response(f"kv error: {e}\n", 500)
    return glint.Response(f"{count}\n")


IncomingHandler = glint.handler(handle)
