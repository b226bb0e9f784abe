//! KV stores over `wasi:keyvalue` (store, atomics, batch): named buckets of byte values.
//! On Glint a function may open only the stores glint.toml lists under `[kv] stores`.
//!
//! ```no_run
//! use glint::kv::Store;
//!
//! let store = Store::open("counters")?;
//! store.set("greeting", "hello")?;
//! let visits = store.increment("visits", 1)?;
//! let greeting = store.get_str("greeting")?;
//! # Ok::<(), glint::kv::Error>(())
//! ```

use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// An error from a store, as `wasi:keyvalue` reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The store does not exist.
    #[error("no such store")]
    NoSuchStore,
    /// The function may not use the store.
    #[error("access denied: list the store in glint.toml under [kv] stores")]
    AccessDenied,
    /// Anything else, in the host's words.
    #[error("{0}")]
    Other(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NoSuchStore => Error::NoSuchStore,
            store::Error::AccessDenied => Error::AccessDenied,
            store::Error::Other(message) => Error::Other(message),
        }
    }
}

/// A key and its value, `None` if it has none: what [`Store::get_many`] answers.
pub type Entry = (String, Option<Vec<u8>>);

/// An open store.
#[derive(Debug)]
pub struct Store {
    bucket: store::Bucket,
}

impl Store {
    /// Opens the store called `name`.
    pub fn open(name: &str) -> Result<Store, Error> {
        Ok(Store {
            bucket: store::open(name)?,
        })
    }

    /// The value of `key`, or `None` if it has none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.bucket.get(key)?)
    }

    /// The value of `key` as text; a value that is not UTF-8 is an [`Error::Other`].
    pub fn get_str(&self, key: &str) -> Result<Option<String>, Error> {
        self.get(key)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| Error::Other(format!("the value of {key:?} is not UTF-8")))
            })
            .transpose()
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        Ok(self.bucket.set(key, value.as_ref())?)
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(self.bucket.delete(key)?)
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.bucket.exists(key)?)
    }

    /// Every key in the store, fetched page by page.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.bucket.list_keys(cursor.as_deref())?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the decimal integer stored at `key` (a missing key counts as 0) in
    /// one atomic step, and returns the new value.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        Ok(atomics::increment(&self.bucket, key, delta)?)
    }

    /// A compare-and-swap handle on `key`: its value now, and a [`Cas::swap`] that writes
    /// only if nobody changed the key in between. [`Store::update`] runs the usual loop.
    pub fn cas(&self, key: &str) -> Result<Cas, Error> {
        Ok(Cas {
            handle: atomics::Cas::new(&self.bucket, key)?,
        })
    }

    /// Replaces the value of `key` with `change(current value)`, atomically: if another
    /// writer got in between, `change` runs again on the newer value, up to `attempts`
    /// times in all. Returns the value written, or `None` if every attempt lost the race.
    ///
    /// `change` may fail with any error a [`kv::Error`](Error) converts into; the update
    /// then stops with that error.
    ///
    /// ```no_run
    /// # let store = glint::kv::Store::open("lists")?;
    /// let names = store.update("names", 10, |current| {
    ///     let mut names = current.map(<[u8]>::to_vec).unwrap_or_default();
    ///     names.extend_from_slice(b"glint\n");
    ///     Ok::<_, glint::kv::Error>(names)
    /// })?;
    /// # Ok::<(), glint::kv::Error>(())
    /// ```
    pub fn update<E: From<Error>>(
        &self,
        key: &str,
        attempts: u32,
        mut change: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<Option<Vec<u8>>, E> {
        let mut cas = self.cas(key)?;
        for _ in 0..attempts {
            let new = change(cas.current()?.as_deref())?;
            match cas.swap(&new) {
                Ok(()) => return Ok(Some(new)),
                Err(CasError::Changed(newer)) => cas = newer,
                Err(CasError::Store(e)) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The values of `keys`, each paired with its key, in the same order; `None` for a
    /// key with no value.
    pub fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Entry>, Error> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        let values = batch::get_many(&self.bucket, &keys)?;
        // The host answers in the order asked, with `none` for a missing key, so the
        // requested keys name the missing entries too.
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, found)| (key, found.map(|(_, value)| value)))
            .collect())
    }

    /// Sets every `(key, value)` pair.
    pub fn set_many<K: Into<String>, V: Into<Vec<u8>>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), Error> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Ok(batch::set_many(&self.bucket, &entries)?)
    }

    /// Removes every key in `keys`.
    pub fn delete_many<K: Into<String>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<(), Error> {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        Ok(batch::delete_many(&self.bucket, &keys)?)
    }
}

/// A compare-and-swap handle from [`Store::cas`].
#[derive(Debug)]
pub struct Cas {
    handle: atomics::Cas,
}

/// Why [`Cas::swap`] did not write.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The key changed since the handle was made; this handle holds its newer value.
    #[error("the key changed since it was read")]
    Changed(Cas),
    #[error(transparent)]
    Store(Error),
}

impl Cas {
    /// The key's value when the handle was made.
    pub fn current(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.handle.current()?)
    }

    /// Writes `value` if the key has not changed since the handle was made.
    pub fn swap(self, value: impl AsRef<[u8]>) -> Result<(), CasError> {
        atomics::swap(self.handle, value.as_ref()).map_err(|e| match e {
            atomics::CasError::CasFailed(handle) => CasError::Changed(Cas { handle }),
            atomics::CasError::StoreError(e) => CasError::Store(e.into()),
        })
    }
}
