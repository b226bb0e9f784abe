//! Spin 3's `spin:key-value/key-value@3.0.0` and `spin:variables/variables@3.0.0`, the
//! interfaces spin-sdk 6 and 7 import on WASI 0.3. Their functions are `async func`s: a
//! KV call takes what it needs from the guest's store, awaits the backend outside it (so
//! the instance's other requests run meanwhile, under `max_concurrent_per_instance`), and
//! counts its result back in. `get-keys` streams every key, page by page.

use std::future::Future;
use std::sync::Arc;

use glint_store::{KvStoreName, StoreError};
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

use super::{SpinKv, SpinVariables, Unset, variables_view};
use crate::capabilities::kv::{Bucket, KvGrant, KvView, PAGE, kv_error, kv_view, store};
use crate::guest::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/spin-3.0.0",
        world: "glint:spin3/glint-host",
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": crate::capabilities::kv::Bucket,
        },
    });
}

use bindings::spin::key_value::key_value;
use bindings::spin::variables::variables;

pub(super) fn link(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    key_value::add_to_linker::<GuestState, SpinKv>(linker, kv_view)?;
    variables::add_to_linker::<GuestState, SpinVariables>(linker, variables_view)
}

type Answer<T> = wasmtime::Result<Result<T, key_value::Error>>;

fn spin_error(e: store::Error) -> key_value::Error {
    match e {
        store::Error::NoSuchStore => key_value::Error::NoSuchStore,
        store::Error::AccessDenied => key_value::Error::AccessDenied,
        store::Error::Other(why) => key_value::Error::Other(why),
    }
}

/// One backend call on the store `this` opened, awaited outside the guest's store.
async fn call<T, R, F, Fut>(
    accessor: &Accessor<T, SpinKv>,
    this: &Resource<Bucket>,
    body: F,
) -> wasmtime::Result<Result<R, store::Error>>
where
    F: FnOnce(Arc<KvGrant>, KvStoreName) -> Fut,
    Fut: Future<Output = Result<R, StoreError>>,
{
    let target = accessor.with(|mut access| access.get().target(this))?;
    let result = match target {
        Ok((grant, store)) => body(grant, store).await.map_err(kv_error),
        Err(e) => Err(e),
    };
    accessor.with(|mut access| access.get().tally(&result));
    Ok(result)
}

impl key_value::Host for KvView<'_> {}

impl key_value::HostStore for KvView<'_> {
    fn drop(&mut self, this: Resource<Bucket>) -> wasmtime::Result<()> {
        self.close_bucket(this)
    }
}

impl<T> key_value::HostStoreWithStore<T> for SpinKv {
    async fn open(accessor: &Accessor<T, Self>, label: String) -> Answer<Resource<Bucket>> {
        let opened = accessor.with(|mut access| access.get().open_bucket(label))?;
        Ok(opened.map_err(spin_error))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        this: Resource<Bucket>,
        key: String,
    ) -> Answer<Option<Vec<u8>>> {
        let got = call(accessor, &this, |g, store| async move {
            let entry = g.backend.get(&g.tenant, &store, &key).await?;
            Ok(entry.map(|v| v.value))
        });
        Ok(got.await?.map_err(spin_error))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        this: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<()> {
        let set = call(accessor, &this, |g, store| async move {
            g.backend.set(&g.tenant, &store, &key, value).await
        });
        Ok(set.await?.map_err(spin_error))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        this: Resource<Bucket>,
        key: String,
    ) -> Answer<()> {
        let deleted = call(accessor, &this, |g, store| async move {
            g.backend.delete(&g.tenant, &store, &key).await
        });
        Ok(deleted.await?.map_err(spin_error))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        this: Resource<Bucket>,
        key: String,
    ) -> Answer<bool> {
        let found = call(accessor, &this, |g, store| async move {
            Ok(g.backend.get(&g.tenant, &store, &key).await?.is_some())
        });
        Ok(found.await?.map_err(spin_error))
    }

    /// Every key, read page by page before the stream opens (at most 100 pages, as for
    /// Spin 2's `get-keys`); the future says whether the listing ended in an error.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        this: Resource<Bucket>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), key_value::Error>>,
    )> {
        let listed = call(accessor, &this, |g, store| async move {
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = g
                    .backend
                    .list_keys(&g.tenant, &store, None, cursor.as_deref(), PAGE)
                    .await?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) if keys.len() < 100 * PAGE => cursor = Some(next),
                    _ => return Ok(keys),
                }
            }
        });
        let (keys, outcome) = match listed.await? {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(spin_error(e))),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((stream, future))
        })
    }
}

impl variables::Host for super::Variables<'_> {}

impl<T> variables::HostWithStore<T> for SpinVariables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables::Error>> {
        let value = accessor.with(|mut access| access.get().lookup(&name));
        Ok(value.map_err(|e| match e {
            Unset::InvalidName(why) => variables::Error::InvalidName(why),
            Unset::Undefined(why) => variables::Error::Undefined(why),
        }))
    }
}
