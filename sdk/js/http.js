// The HTTP entry point of a Glint JS function: `wasi:http/incoming-handler`, implemented
// here on top of `wasi:http/types` and handed to the function's fetch listener as a
// Web `Request`, the way Workers and StarlingMonkey's own fetch event do.
//
// Why not StarlingMonkey's built-in fetch event: its event state is not reset after a
// request, so an instance cannot serve a second one (StarlingMonkey issue 247), which
// rules out `[scaling] reuse = true`. componentize-js leaves that built-in out when the
// module exports `incomingHandler` itself, as `glint build` makes it do with this one.
// The user's code does not change: `addEventListener("fetch", e => e.respondWith(...))`.

import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from "wasi:http/types@0.2.10";

const listeners = [];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The most bytes one `blocking-write-and-flush` may take. */
const WRITE_CHUNK = 4096;
/** Headers wasi:http refuses to set on a response; hop-by-hop, so they are dropped. */
const FORBIDDEN = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
]);

// Fetch listeners are kept here; any other event goes to the runtime as before.
const runtimeAddEventListener = globalThis.addEventListener;
globalThis.addEventListener = function addEventListener(type, listener, options) {
  if (type === "fetch") {
    listeners.push(listener);
  } else if (typeof runtimeAddEventListener === "function") {
    runtimeAddEventListener.call(globalThis, type, listener, options);
  }
};

/** What a fetch listener gets: `request`, `respondWith` and `waitUntil`. */
class FetchEvent {
  constructor(request) {
    this.type = "fetch";
    this.request = request;
    this.response = undefined;
    this.pending = [];
  }
  respondWith(response) {
    if (this.response !== undefined) {
      throw new Error("respondWith was called twice for one request");
    }
    this.response = Promise.resolve(response);
  }
  waitUntil(promise) {
    this.pending.push(Promise.resolve(promise));
  }
}

function methodOf(method) {
  return method.tag === "other" ? method.val : method.tag.toUpperCase();
}

function urlOf(request) {
  const scheme = request.scheme();
  const protocol = !scheme ? "http" : scheme.tag === "other" ? scheme.val : scheme.tag.toLowerCase();
  const authority = request.authority() ?? "localhost";
  return `${protocol}://${authority}${request.pathWithQuery() ?? "/"}`;
}

/** The whole request body (the node has already read it, up to the function's limit). */
function readBody(request) {
  const body = request.consume();
  const stream = body.stream();
  const chunks = [];
  let total = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(65536n);
    } catch (e) {
      if (e?.payload?.tag === "closed") break;
      throw e;
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  stream[Symbol.dispose]();
  IncomingBody.finish(body)[Symbol.dispose]();
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

function toRequest(incoming) {
  const method = methodOf(incoming.method());
  const fields = incoming.headers();
  const headers = new Headers();
  for (const [name, value] of fields.entries()) headers.append(name, decoder.decode(value));
  fields[Symbol.dispose]();
  const body = readBody(incoming);
  const url = urlOf(incoming);
  incoming[Symbol.dispose]();
  const hasBody = method !== "GET" && method !== "HEAD" && body.length > 0;
  return new Request(url, { method, headers, body: hasBody ? body : undefined });
}

function text(status, message) {
  return new Response(message, { status, headers: { "content-type": "text/plain" } });
}

/** The listener's answer, and the work it asked to finish with `waitUntil`. */
async function respond(request) {
  const event = new FetchEvent(request);
  if (listeners.length === 0) {
    const help = 'the function has no fetch handler; add addEventListener("fetch", (event) => event.respondWith(...))\n';
    return { response: text(500, help), pending: [] };
  }
  for (const listener of listeners) {
    if (typeof listener === "function") listener(event);
    else listener.handleEvent(event);
    if (event.response !== undefined) break;
  }
  const answer = (response) => ({ response, pending: event.pending });
  if (event.response === undefined) {
    return answer(text(500, "the fetch handler did not call event.respondWith\n"));
  }
  const response = await event.response;
  if (!(response instanceof Response)) {
    return answer(text(500, "the fetch handler responded with something that is not a Response\n"));
  }
  return answer(response);
}

function send(response, body, out) {
  const entries = [];
  for (const [name, value] of response.headers) {
    if (!FORBIDDEN.has(name)) entries.push([name, encoder.encode(value)]);
  }
  const outgoing = new OutgoingResponse(Fields.fromList(entries));
  outgoing.setStatusCode(response.status);
  const outBody = outgoing.body();
  ResponseOutparam.set(out, { tag: "ok", val: outgoing });
  const stream = outBody.write();
  for (let at = 0; at < body.length; at += WRITE_CHUNK) {
    stream.blockingWriteAndFlush(body.subarray(at, at + WRITE_CHUNK));
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(outBody, undefined);
}

/** `wasi:http/incoming-handler`: componentize-js exports this as the component's handler. */
export const incomingHandler = {
  async handle(incoming, out) {
    let response;
    let pending = [];
    try {
      ({ response, pending } = await respond(toRequest(incoming)));
    } catch (e) {
      console.error(`ERROR: the fetch handler threw: ${e?.stack ?? e}`);
      response = text(500, "the function failed; its log has the error\n");
    }
    const body = new Uint8Array(await response.arrayBuffer());
    send(response, body, out);
    // waitUntil work finishes before the instance is done with this request.
    await Promise.allSettled(pending);
  },
};
