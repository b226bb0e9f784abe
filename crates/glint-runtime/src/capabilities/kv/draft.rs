//! wasmtime's `wasi:keyvalue@0.2.0-draft` (what `wasmtime serve -Skeyvalue` links), over
//! the same stores, grant and tally as draft2: each call here is the draft2 call of the
//! same name. The two drafts differ in three places: `list-keys` pages by a number (here
//! the index of the draft2 cursor, kept in the open bucket), `increment` takes and returns
//! a `u64`, and there is no compare-and-swap.

use wasmtime::component::{Linker, Resource};

use super::{Bucket, HasKv, KvView, atomics, batch, kv_view, store};
use crate::guest::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/wasi-keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::capabilities::kv::Bucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics as draft_atomics, batch as draft_batch, store as draft};

/// Links the draft's store, atomics and batch.
pub(super) fn link(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    bindings::Imports::add_to_linker::<GuestState, HasKv>(linker, kv_view)
}

type Answer<T> = wasmtime::Result<Result<T, draft::Error>>;

fn draft_error(e: store::Error) -> draft::Error {
    match e {
        store::Error::NoSuchStore => draft::Error::NoSuchStore,
        store::Error::AccessDenied => draft::Error::AccessDenied,
        store::Error::Other(why) => draft::Error::Other(why),
    }
}

/// The draft2 handle of the same bucket, for one call.
fn borrowed(bucket: &Resource<Bucket>) -> Resource<Bucket> {
    Resource::new_borrow(bucket.rep())
}

impl draft::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        Ok(store::Host::open(self, identifier)
            .await?
            .map_err(draft_error))
    }
}

impl draft::HostBucket for KvView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let call = store::HostBucket::get(self, borrowed(&bucket), key);
        Ok(call.await?.map_err(draft_error))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let call = store::HostBucket::set(self, borrowed(&bucket), key, value);
        Ok(call.await?.map_err(draft_error))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        let call = store::HostBucket::delete(self, borrowed(&bucket), key);
        Ok(call.await?.map_err(draft_error))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let call = store::HostBucket::exists(self, borrowed(&bucket), key);
        Ok(call.await?.map_err(draft_error))
    }

    /// A page of keys, as draft2's. The draft's cursor is a number: the index, in the bucket's
    /// list, of the key the next page starts after; an index the bucket never gave is
    /// `other`.
    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Answer<draft::KeyResponse> {
        let after = match cursor {
            None => None,
            Some(n) => {
                let seen = &self.table.get(&bucket)?.cursors;
                match usize::try_from(n).ok().and_then(|n| seen.get(n)) {
                    Some(key) => Some(key.clone()),
                    None => {
                        return Ok(Err(draft::Error::Other(format!(
                            "cursor {n} was not given by list-keys on this bucket; start again without a cursor"
                        ))));
                    }
                }
            }
        };
        let page = match store::HostBucket::list_keys(self, borrowed(&bucket), after).await? {
            Ok(page) => page,
            Err(e) => return Ok(Err(draft_error(e))),
        };
        let cursor = match page.cursor {
            None => None,
            Some(next) => {
                let seen = &mut self.table.get_mut(&bucket)?.cursors;
                let index = match seen.iter().position(|c| *c == next) {
                    Some(i) => i,
                    None => {
                        seen.push(next);
                        seen.len() - 1
                    }
                };
                Some(index as u64)
            }
        };
        Ok(Ok(draft::KeyResponse {
            keys: page.keys,
            cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        store::HostBucket::drop(self, bucket).await
    }
}

impl draft_atomics::Host for KvView<'_> {
    /// The draft counts in `u64`; Glint's counters are `i64`, so a delta or a total past
    /// `i64::MAX`, or a counter made negative through draft2, is `other`.
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Answer<u64> {
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(draft::Error::Other(format!(
                "delta {delta} is past the largest counter step, {}",
                i64::MAX
            ))));
        };
        let call = atomics::Host::increment(self, borrowed(&bucket), key.clone(), delta);
        Ok(match call.await? {
            Ok(total) => u64::try_from(total).map_err(|_| {
                draft::Error::Other(format!(
                    "{key:?} holds {total}, which wasi:keyvalue@0.2.0-draft's u64 counters cannot show; read it with draft2"
                ))
            }),
            Err(e) => Err(draft_error(e)),
        })
    }
}

impl draft_batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let call = batch::Host::get_many(self, borrowed(&bucket), keys);
        Ok(call.await?.map_err(draft_error))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<()> {
        let call = batch::Host::set_many(self, borrowed(&bucket), key_values);
        Ok(call.await?.map_err(draft_error))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let call = batch::Host::delete_many(self, borrowed(&bucket), keys);
        Ok(call.await?.map_err(draft_error))
    }
}
