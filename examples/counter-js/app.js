// counter-js: counts hits per key in the KV store `counters`.
//
// `POST /<key>` adds one atomically and answers the new count; `GET /<key>` answers the
// count, 0 for a key never counted. `/` counts under the key `hits`.

import { kv, KvError } from "glint";

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

function text(body, status = 200, headers = {}) {
  return new Response(body, { status, headers: { "content-type": "text/plain", ...headers } });
}

async function handle(request) {
  const key = new URL(request.url).pathname.slice(1) || "hits";
  try {
    const counters = kv.open("counters");
    switch (request.method) {
      // One atomic step on the host, so concurrent requests never lose a count.
      case "POST":
        return text(`${counters.increment(key)}\n`);
      case "GET":
        return text(`${Number(counters.getText(key) ?? 0)}\n`);
      default:
        return text("use GET or POST\n", 405, { allow: "GET, POST" });
    }
  } catch (e) {
    if (e instanceof KvError) return text(`kv error: ${e.message}\n`, 500);
    throw e;
  }
}
