//! [`UsageStore`] on SQLite: usage summed per function, version and minute.

use async_trait::async_trait;
use rusqlite::params;

use super::EmbeddedStore;
use crate::model::*;
use crate::{Result, UsageStore};

#[async_trait]
impl UsageStore for EmbeddedStore {
    // One transaction: an error means nothing was stored, so a batch sent again is
    // never counted twice.
    async fn add_usage(
        &self,
        tenant: &TenantId,
        _batch: &str,
        records: Vec<UsageRecord>,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let tenant = tenant.clone();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO usage (tenant, function, version, minute_ms, requests, errors, bytes_in, bytes_out, wall_ms, cpu_us, memory_kib_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (tenant, function, minute_ms, version) DO UPDATE SET
                       requests = requests + ?5, errors = errors + ?6, bytes_in = bytes_in + ?7,
                       bytes_out = bytes_out + ?8, wall_ms = wall_ms + ?9, cpu_us = cpu_us + ?10,
                       memory_kib_ms = memory_kib_ms + ?11",
                )?;
                for r in &records {
                    stmt.execute(params![
                        tenant.as_str(),
                        r.function.as_str(),
                        r.version.0,
                        r.minute_ms,
                        r.requests as i64,
                        r.errors as i64,
                        r.bytes_in as i64,
                        r.bytes_out as i64,
                        r.wall_ms as i64,
                        r.cpu_us as i64,
                        r.memory_kib_ms as i64
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn usage(
        &self,
        tenant: &TenantId,
        function: Option<&FunctionName>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<UsageRecord>> {
        let tenant = tenant.clone();
        let function = function.cloned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT function, version, minute_ms, requests, errors, bytes_in, bytes_out, wall_ms, cpu_us, memory_kib_ms
                 FROM usage WHERE tenant = ?1 AND (?2 IS NULL OR function = ?2) AND minute_ms >= ?3 AND minute_ms < ?4
                 ORDER BY minute_ms, function, version",
            )?;
            let rows = stmt.query_map(
                params![tenant.as_str(), function.as_ref().map(|f| f.as_str()), start_ms, end_ms],
                |r| {
                    let mut n = [0i64; 7];
                    for (i, slot) in n.iter_mut().enumerate() {
                        *slot = r.get(3 + i)?;
                    }
                    Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, i64>(2)?, n))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (name, version, minute_ms, n) = row?;
                out.push(UsageRecord {
                    function: name.parse()?,
                    version: VersionId(version),
                    minute_ms,
                    requests: n[0] as u64,
                    errors: n[1] as u64,
                    bytes_in: n[2] as u64,
                    bytes_out: n[3] as u64,
                    wall_ms: n[4] as u64,
                    cpu_us: n[5] as u64,
                    memory_kib_ms: n[6] as u64,
                    region: String::new(),
                });
            }
            Ok(out)
        })
        .await
    }
}
