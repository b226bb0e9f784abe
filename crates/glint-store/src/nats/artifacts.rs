//! [`Artifacts`] on JetStream: component bytes in an object store, named
//! `<tenant>/<sha256>`. A deploy puts the bytes before anything refers to them.

use async_nats::jetstream::object_store;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use async_nats::jetstream::{self, stream};

use super::{NatsStore, backend, direct};
use crate::model::*;
use crate::{Artifacts, Result, StoreError};

/// How long a component missing from this region's copy is waited for.
const COPY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn object_name(tenant: &TenantId, sha256: &str) -> String {
    format!("{tenant}/{sha256}")
}

/// The artifacts object store as one region sees it: objects are put in the origin, and
/// read from this region's mirror of its stream when the origin is in another region.
pub(crate) struct Copies {
    bucket: String,
    /// The origin, once it has answered: a node in a cut-off region opens it when it is
    /// back, for its first deploy.
    origin: tokio::sync::OnceCell<object_store::ObjectStore>,
    js: jetstream::Context,
    /// This region's mirror of the origin's stream, when the origin is elsewhere.
    mirror: Option<String>,
}

impl Copies {
    /// Opens the object store from this region (as [`super::copies::Bucket::open`]).
    pub(crate) async fn open(
        js: &jetstream::Context,
        region: Option<&str>,
        bucket: &str,
        replicas: usize,
    ) -> Result<Copies> {
        let origin_stream = format!("OBJ_{bucket}");
        let mut copies = Copies {
            bucket: bucket.to_string(),
            origin: tokio::sync::OnceCell::new(),
            js: js.clone(),
            mirror: None,
        };
        if let Some(region) = region {
            let mirror = super::copies::mirror_name(&origin_stream, region);
            if js.get_stream(&mirror).await.is_ok() {
                copies.mirror = Some(mirror);
                return Ok(copies);
            }
        }
        let store = super::patiently(|| async {
            match js.get_object_store(bucket).await {
                Ok(store) => Ok(store),
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: bucket.to_string(),
                        description: Some("Glint component bytes, by tenant and sha256".into()),
                        storage: stream::StorageType::File,
                        num_replicas: replicas,
                        placement: region.map(|r| stream::Placement {
                            cluster: Some(r.to_string()),
                            tags: Vec::new(),
                        }),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| backend("creating the artifacts object store", e)),
            }
        })
        .await?;
        let info = js
            .get_stream(&origin_stream)
            .await
            .map_err(|e| backend("reading the artifacts object store", e))?
            .info()
            .await
            .map_err(|e| backend("reading the artifacts object store", e))?
            .clone();
        let _ = copies.origin.set(store);
        let origin_region = info.cluster.as_ref().and_then(|c| c.name.clone());
        if let Some(here) = region
            && origin_region.as_deref().is_some_and(|o| o != here)
        {
            let mirror = super::copies::make_mirror(js, here, &info, replicas).await?;
            copies.mirror = Some(mirror.cached_info().config.name.clone());
        }
        Ok(copies)
    }

    /// The origin object store, for puts and deletes.
    async fn origin(&self) -> Result<&object_store::ObjectStore> {
        self.origin
            .get_or_try_init(|| async {
                self.js.get_object_store(&self.bucket).await.map_err(|e| {
                    backend(
                        "opening the artifacts object store (its origin region cannot be reached now)",
                        e,
                    )
                })
            })
            .await
    }

    /// A component's bytes read from this region's mirror, with direct gets: the
    /// object's description, then its chunks in order.
    async fn read_mirror(
        &self,
        client: &async_nats::Client,
        mirror: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        let meta_subject = format!("$O.{}.M.{}", self.bucket, base64_url(name.as_bytes()));
        let mut meta = None;
        direct::each(client, mirror, &meta_subject, |got| {
            meta = Some(got.payload);
            true
        })
        .await?;
        let Some(meta) = meta else { return Ok(None) };
        let info: ObjectMeta = super::from_json("a component's description", &meta)?;
        if info.deleted {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(info.size);
        let mut chunks = 0;
        direct::each(
            client,
            mirror,
            &format!("$O.{}.C.{}", self.bucket, info.nuid),
            |got| {
                bytes.extend_from_slice(&got.payload);
                chunks += 1;
                chunks < info.chunks
            },
        )
        .await?;
        if chunks < info.chunks || bytes.len() != info.size {
            return Err(backend(
                "reading a component from this region's copy",
                format!("{chunks} of {} chunks copied so far", info.chunks),
            ));
        }
        Ok(Some(bytes))
    }
}

/// What Glint reads of an object's description (the object store's JSON).
#[derive(serde::Deserialize)]
struct ObjectMeta {
    nuid: String,
    size: usize,
    #[serde(default)]
    chunks: usize,
    #[serde(default)]
    deleted: bool,
}

/// Base64 with the URL alphabet and padding, as the object store names its subjects.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl NatsStore {
    /// Stores a component's bytes, unless they are there already.
    pub(crate) async fn put_artifact(
        &self,
        tenant: &TenantId,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let name = object_name(tenant, sha256);
        let origin = self.artifacts.origin().await?;
        // Putting an object again under its name is harmless, so this write may be
        // retried like a read.
        super::patiently(|| async {
            if let Ok(info) = origin.info(&name).await
                && !info.deleted
                && info.size == bytes.len()
            {
                return Ok(());
            }
            let mut reader = bytes;
            origin
                .put(name.as_str(), &mut reader)
                .await
                .map_err(|e| backend("storing a component", e))?;
            Ok(())
        })
        .await
    }

    /// Whether the component was put in the last hour (or cannot be read): a deploy may
    /// be about to refer to it, so it is not deleted yet.
    pub(crate) async fn artifact_is_recent(&self, tenant: &TenantId, sha256: &str) -> bool {
        let Ok(origin) = self.artifacts.origin().await else {
            return true;
        };
        let Ok(info) = origin.info(object_name(tenant, sha256)).await else {
            return false;
        };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        info.modified
            .is_none_or(|m| std::time::SystemTime::from(m) > hour_ago)
    }

    /// The tenant's components in the origin, each with its size: what deleting the
    /// tenant removes, deploys cut short and components of the last hour included.
    pub(crate) async fn tenant_artifacts(&self, tenant: &TenantId) -> Result<Vec<(String, u64)>> {
        use futures_util::StreamExt;
        let origin = self.artifacts.origin().await?;
        let prefix = format!("{tenant}/");
        let mut out = Vec::new();
        // A listing of an empty store waits for a first entry that never comes.
        let stream = self
            .artifacts
            .js
            .get_stream(format!("OBJ_{}", self.artifacts.bucket))
            .await
            .map_err(|e| backend("listing components", e))?;
        let empty = stream.cached_info().state.messages == 0;
        if empty {
            return Ok(out);
        }
        let mut list = origin
            .list()
            .await
            .map_err(|e| backend("listing components", e))?;
        loop {
            // Bounded, as every listing is: the client can wait without end for a
            // consumer lost with its server.
            let Ok(next) =
                tokio::time::timeout(std::time::Duration::from_secs(10), list.next()).await
            else {
                return Err(backend(
                    "listing components",
                    "the store sent nothing for 10 s",
                ));
            };
            let Some(info) = next else { break };
            let info = info.map_err(|e| backend("listing components", e))?;
            if let Some(sha) = info.name.strip_prefix(&prefix) {
                out.push((sha.to_string(), info.size as u64));
            }
        }
        Ok(out)
    }

    /// Deletes a component's bytes; a missing object is no error.
    pub(crate) async fn delete_artifact(&self, tenant: &TenantId, sha256: &str) -> Result<()> {
        match self
            .artifacts
            .origin()
            .await?
            .delete(object_name(tenant, sha256))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend("deleting a component", e)),
        }
    }

    /// A component's bytes from this region's copy. The registry and the components are
    /// copied apart, so a version can arrive here before its bytes: they are waited for
    /// a while, then read from the origin if it can be reached.
    async fn artifact_here(
        &self,
        mirror: &str,
        tenant: &TenantId,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>> {
        let name = object_name(tenant, sha256);
        let deadline = tokio::time::Instant::now() + COPY_WAIT;
        let mut pause = std::time::Duration::from_millis(10);
        let why = loop {
            let why = match self
                .artifacts
                .read_mirror(&self.client, mirror, &name)
                .await
            {
                Ok(Some(bytes)) => return Ok(Some(bytes)),
                Ok(None) => "not copied to this region yet".to_string(),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + pause > deadline {
                break why;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(250));
        };
        tracing::warn!(
            component = sha256,
            why,
            "reading a component from its origin region instead of this region's copy"
        );
        self.artifact_at_origin(tenant, sha256).await
    }

    /// A component's bytes from the origin object store, read again while NATS is busy
    /// (a fresh cluster electing leaders answers "no responders" or times out for a while).
    async fn artifact_at_origin(&self, tenant: &TenantId, sha256: &str) -> Result<Option<Vec<u8>>> {
        super::patiently(|| self.read_origin(tenant, sha256)).await
    }

    async fn read_origin(&self, tenant: &TenantId, sha256: &str) -> Result<Option<Vec<u8>>> {
        let mut object = match self
            .artifacts
            .origin()
            .await?
            .get(object_name(tenant, sha256))
            .await
        {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend("reading a component", e)),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| backend("reading a component", e))?;
        Ok(Some(bytes))
    }
}

#[async_trait]
impl Artifacts for NatsStore {
    async fn artifact(&self, tenant: &TenantId, sha256: &str) -> Result<Vec<u8>> {
        let found = match &self.artifacts.mirror {
            Some(mirror) => self.artifact_here(mirror, tenant, sha256).await?,
            None => self.artifact_at_origin(tenant, sha256).await?,
        };
        let Some(bytes) = found else {
            return Err(StoreError::NotFound(format!(
                "component {sha256} is not stored; deploy the function again"
            )));
        };
        // The object store checks its own digest; this checks it is the one asked for.
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(backend(
                "reading a component",
                format!("the bytes stored as {sha256} do not hash to it"),
            ));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::base64_url;

    #[test]
    fn object_names_encode_as_the_object_store_does() {
        // Standard base64 with the URL alphabet (- and _) and padding.
        assert_eq!(base64_url(b"hello"), "aGVsbG8=");
        assert_eq!(base64_url(b"hi"), "aGk=");
        assert_eq!(base64_url(b"abc"), "YWJj");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8=");
        assert_eq!(base64_url(b""), "");
    }
}
