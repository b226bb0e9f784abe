// Glint's JavaScript SDK: KV stores and config for functions built by `glint build`.
//
//   import { kv, config } from "glint";
//
//   const store = kv.open("counters");   // a store named in glint.toml's [kv] stores
//   const hits = store.increment("hits");
//   const greeting = config.get("GREETING") ?? "Hello";
//
// Outbound HTTP is the standard global `fetch`. This module wraps the WIT imports that
// componentize-js exposes as `wasi:keyvalue/...` and `wasi:config/...` modules; `glint
// build` bundles it into the function with esbuild. `http.js` is the function's HTTP
// entry point, which calls the `fetch` listener the function adds.

export { incomingHandler } from "./http.js";

import { open as openBucket } from "wasi:keyvalue/store@0.2.0-draft2";
import { Cas, increment, swap } from "wasi:keyvalue/atomics@0.2.0-draft2";
import { get as getConfig, getAll as getAllConfig } from "wasi:config/store@0.2.0-rc.1";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A store operation failed. `code` is the WIT error case: `no-such-store`,
 * `access-denied` or `other` (then `detail` says what happened); `cas-failed` when
 * `update` ran out of attempts. The message is the code, then `: detail` if any.
 */
export class KvError extends Error {
  constructor(code, detail) {
    super(detail === undefined ? code : `${code}: ${detail}`);
    this.name = "KvError";
    this.code = code;
    this.detail = detail;
  }
}

/**
 * Runs a call into the bindings. A WIT `result` error is thrown as an Error whose
 * `payload` is the WIT variant, e.g. `{ tag: "other", val: "disk full" }`; it is thrown
 * on as `toError(payload)`.
 */
function callWit(operation, toError) {
  try {
    return operation();
  } catch (e) {
    if (e?.payload?.tag) throw toError(e.payload);
    throw e;
  }
}

function kvError(payload) {
  return new KvError(payload.tag, payload.val);
}

function callStore(operation) {
  return callWit(operation, kvError);
}

/** Strings are stored as UTF-8, bytes as they are, anything else as JSON. */
function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === "string") return encoder.encode(value);
  return encoder.encode(JSON.stringify(value));
}

/** An open store. Get one with `kv.open(name)`. */
class Store {
  #bucket;

  constructor(bucket) {
    this.#bucket = bucket;
  }

  /** The key's value as a Uint8Array, or undefined when the key is missing. */
  get(key) {
    return callStore(() => this.#bucket.get(key));
  }

  /** The key's value as UTF-8 text, or undefined. */
  getText(key) {
    const bytes = this.get(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  }

  /** The key's value parsed as JSON, or undefined. */
  getJson(key) {
    const text = this.getText(key);
    return text === undefined ? undefined : JSON.parse(text);
  }

  /** Stores a string (as UTF-8), a Uint8Array, or any other value as JSON. */
  set(key, value) {
    callStore(() => this.#bucket.set(key, toBytes(value)));
  }

  /** Removes the key; removing a missing key is not an error. */
  delete(key) {
    callStore(() => this.#bucket.delete(key));
  }

  exists(key) {
    return callStore(() => this.#bucket.exists(key));
  }

  /** Every key in the store, fetching page after page as the caller iterates. */
  *keys() {
    let cursor;
    do {
      const page = callStore(() => this.#bucket.listKeys(cursor));
      yield* page.keys;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /**
   * Atomically adds `delta` to the key's decimal value (a missing key counts as 0) and
   * returns the new value, as a Number: exact up to 2^53.
   */
  increment(key, delta = 1) {
    const by = BigInt(delta);
    if (by >= 0n) {
      return Number(callStore(() => increment(this.#bucket, key, by)));
    }
    // componentize-js 0.23 traps when it lowers a negative s64, so a negative delta
    // goes through compare-and-swap instead: just as atomic, a little slower.
    const stored = this.update(key, (current) => {
      const text = current ? decoder.decode(current).trim() : "0";
      if (!/^-?[0-9]+$/.test(text)) {
        throw new KvError("other", `the value of ${JSON.stringify(key)} is not a decimal integer, so it cannot be incremented`);
      }
      return String(BigInt(text) + by);
    });
    return Number(decoder.decode(stored));
  }

  /**
   * Replaces the key's value with `change(current)` atomically and returns what was
   * stored. `current` is a Uint8Array, or undefined when the key is missing; `change`
   * returns what `set` takes. If another writer changes the key between the read and the
   * write, `change` runs again on the newer value, up to `attempts` times in all; then a
   * KvError with code `cas-failed` is thrown.
   */
  update(key, change, { attempts = 1000 } = {}) {
    let cas = callStore(() => Cas.new(this.#bucket, key));
    for (let attempt = 0; attempt < attempts; attempt++) {
      const value = toBytes(change(callStore(() => cas.current())));
      try {
        swap(cas, value);
        return value;
      } catch (e) {
        if (e?.payload?.tag !== "cas-failed") {
          throw e?.payload?.tag === "store-error" ? kvError(e.payload.val) : e;
        }
        // The failed swap hands back a handle on the value that beat us.
        cas = e.payload.val;
      }
    }
    const why = `${JSON.stringify(key)} changed during each of ${attempts} attempts`;
    throw new KvError("cas-failed", why);
  }
}

/** The function's KV stores (wasi:keyvalue). */
export const kv = {
  /** Opens the store `name`; it must be listed in glint.toml's `[kv] stores`. */
  open(name) {
    return new Store(callStore(() => openBucket(name)));
  },
};

/** The host could not read its config source; `code` is `upstream` or `io`. */
export class ConfigError extends Error {
  constructor(payload) {
    super(`${payload.tag}: ${payload.val}`);
    this.name = "ConfigError";
    this.code = payload.tag;
  }
}

function callConfig(operation) {
  return callWit(operation, (payload) => new ConfigError(payload));
}

/** The function's config values and secrets (wasi:config/store). */
export const config = {
  /** The value of `name`, or undefined when it is not set. */
  get(name) {
    return callConfig(() => getConfig(name));
  },

  /** Every config value the function can see, as a plain object. */
  getAll() {
    return Object.fromEntries(callConfig(() => getAllConfig()));
  },
};
