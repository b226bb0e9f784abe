// {{name}}: a Glint function. componentize-js turns this fetch handler into a standard
// wasi:http/incoming-handler component that runs unchanged under Glint or `wasmtime serve`.

import { config } from "glint";

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  // Lines on stdout land in `glint logs`; a prefix such as "ERROR:" sets the level.
  console.log(`{{name}}: ${request.method} ${url.pathname}${url.search}`);
  const greeting = config.get("GREETING") ?? "Hello";
  return new Response(`${greeting} from {{name}} (JavaScript)!\n`, {
    headers: { "content-type": "text/plain" },
  });
}
