"""Key-value stores over wasi:keyvalue@0.2.0-draft2.

    from glint import kv

    store = kv.open("counters")          # a store named in glint.toml's [kv] stores
    store.set("greeting", "hello")
    store.get("greeting")                # b"hello"; None when missing
    store.increment("hits")              # atomic; a missing key counts as 0
    store.update("doc", lambda old: ...) # compare-and-swap, retried while others write

Every failure raises a `KvError` subclass, one per WIT error case.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from componentize_py_types import Err
from wit_world.imports import atomics
from wit_world.imports import wasi_keyvalue_store as store_wit

Value = bytes | str


class KvError(Exception):
    """A store operation failed. `code` is the WIT error case, e.g. `access-denied`;
    `str(error)` is the code, then `: message` when there is one."""

    code = "other"

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}" if self.args else self.code


class NoSuchStore(KvError):
    """The store does not exist on this node."""

    code = "no-such-store"


class AccessDenied(KvError):
    """The function may not use this store: add it to `[kv] stores` in glint.toml."""

    code = "access-denied"


class Other(KvError):
    """Any other store error; the message says what happened."""

    code = "other"


class CasFailed(KvError):
    """`update` gave up: the key kept changing under it for every attempt."""

    code = "cas-failed"


def _error(wit_error: store_wit.Error) -> KvError:
    if isinstance(wit_error, store_wit.Error_NoSuchStore):
        return NoSuchStore()
    if isinstance(wit_error, store_wit.Error_AccessDenied):
        return AccessDenied()
    return Other(wit_error.value)


@contextmanager
def _raising_kv_errors() -> Iterator[None]:
    """Turns the bindings' `Err(store.Error)` into the matching `KvError`."""
    try:
        yield
    except Err as e:
        raise _error(e.value) from None


def _as_bytes(value: Value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class Store:
    """An open store. Get one with `kv.open(name)`."""

    def __init__(self, bucket: store_wit.Bucket):
        self._bucket = bucket

    def get(self, key: str) -> bytes | None:
        """The key's value, or None when the key is missing."""
        with _raising_kv_errors():
            return self._bucket.get(key)

    def set(self, key: str, value: Value) -> None:
        """Stores `value` (a str is stored as UTF-8)."""
        with _raising_kv_errors():
            self._bucket.set(key, _as_bytes(value))

    def delete(self, key: str) -> None:
        """Removes the key; removing a missing key is not an error."""
        with _raising_kv_errors():
            self._bucket.delete(key)

    def exists(self, key: str) -> bool:
        with _raising_kv_errors():
            return self._bucket.exists(key)

    def keys(self) -> Iterator[str]:
        """Every key in the store, fetching page after page as the caller iterates."""
        cursor: str | None = None
        while True:
            with _raising_kv_errors():
                page = self._bucket.list_keys(cursor)
            yield from page.keys
            cursor = page.cursor
            if cursor is None:
                return

    def increment(self, key: str, delta: int = 1) -> int:
        """Atomically adds `delta` to the key's decimal value and returns the new value."""
        with _raising_kv_errors():
            return atomics.increment(self._bucket, key, delta)

    def update(
        self,
        key: str,
        change: Callable[[bytes | None], Value],
        attempts: int = 1000,
    ) -> bytes:
        """Replaces the key's value with `change(current)` atomically, and returns it.

        `current` is None when the key is missing. If another writer changes the key
        between the read and the write, `change` runs again on the newer value, up to
        `attempts` times in all; then `CasFailed` is raised.
        """
        with _raising_kv_errors():
            cas = atomics.Cas.new(self._bucket, key)
        for _ in range(attempts):
            with _raising_kv_errors():
                current = cas.current()
            new = _as_bytes(change(current))
            try:
                atomics.swap(cas, new)
                return new
            except Err as e:
                if isinstance(e.value, atomics.CasError_StoreError):
                    raise _error(e.value.value) from None
                # The failed swap hands back a handle on the value that beat us.
                cas = e.value.value
        raise CasFailed(f"{key!r} changed during each of {attempts} attempts")


def open(name: str) -> Store:  # noqa: A001 - mirrors wasi:keyvalue's `open`
    """Opens the store `name`; it must be listed in glint.toml's `[kv] stores`."""
    with _raising_kv_errors():
        return Store(store_wit.open(name))
