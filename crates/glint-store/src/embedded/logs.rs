//! [`LogStore`] on SQLite: guest log lines, appended in batches, read back with filters,
//! and pruned by age and size.

use async_trait::async_trait;
use rusqlite::params;

use super::EmbeddedStore;
use crate::model::*;
use crate::{LogStore, Result};

fn level_rank(level: Level) -> i64 {
    level as i64
}

#[async_trait]
impl LogStore for EmbeddedStore {
    async fn append_logs(&self, lines: Vec<LogRecord>) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO logs (tenant, function, version, execution_id, ts_ms, level, level_rank, stream, message, node, region)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for l in &lines {
                    stmt.execute(params![
                        l.tenant.as_str(),
                        l.function.as_str(),
                        l.version.0,
                        l.execution_id,
                        l.ts_ms,
                        l.level.as_str(),
                        level_rank(l.level),
                        l.stream,
                        l.message,
                        l.node,
                        l.region
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn logs(&self, tenant: &TenantId, query: LogQuery) -> Result<Vec<LogRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut sql = String::from(
                "SELECT function, version, execution_id, ts_ms, level, stream, message, node, region FROM logs WHERE tenant = ?1",
            );
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(tenant.to_string())];
            if let Some(f) = &query.function {
                args.push(Box::new(f.to_string()));
                sql.push_str(&format!(" AND function = ?{}", args.len()));
            }
            if let Some(id) = &query.execution_id {
                args.push(Box::new(id.clone()));
                sql.push_str(&format!(" AND execution_id = ?{}", args.len()));
            }
            if let Some(since) = query.since_ms {
                args.push(Box::new(since));
                sql.push_str(&format!(" AND ts_ms >= ?{}", args.len()));
            }
            if let Some(until) = query.until_ms {
                args.push(Box::new(until));
                sql.push_str(&format!(" AND ts_ms < ?{}", args.len()));
            }
            if let Some(v) = query.version {
                args.push(Box::new(v.0));
                sql.push_str(&format!(" AND version = ?{}", args.len()));
            }
            for (column, value) in [("node", &query.node), ("region", &query.region)] {
                if let Some(value) = value {
                    args.push(Box::new(value.clone()));
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            }
            if let Some(level) = query.min_level {
                args.push(Box::new(level_rank(level)));
                sql.push_str(&format!(" AND level_rank >= ?{}", args.len()));
            }
            args.push(Box::new(query.lines.max(1) as i64));
            let order = if query.oldest_first { "ASC" } else { "DESC" };
            sql.push_str(&format!(" ORDER BY id {order} LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            let rows = stmt.query_map(refs.as_slice(), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (function, version, execution_id, ts_ms, level, stream, message, node, region) =
                    row?;
                out.push(LogRecord {
                    ts_ms,
                    tenant: tenant.clone(),
                    function: function.parse()?,
                    version: VersionId(version),
                    execution_id,
                    level: level.parse()?,
                    stream,
                    message,
                    node,
                    region,
                });
            }
            if !query.oldest_first {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    async fn prune_logs(&self, before_ms: i64, max_bytes: u64) -> Result<u64> {
        self.with(move |conn| {
            let mut deleted =
                conn.execute("DELETE FROM logs WHERE ts_ms < ?1", params![before_ms])? as u64;
            // A line's size: its text plus what the other columns and the indexes take.
            const ROW_OVERHEAD: i64 = 160;
            let (count, bytes): (i64, i64) = conn.query_row(
                "SELECT count(*), coalesce(sum(length(message)), 0) FROM logs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let total = bytes + count * ROW_OVERHEAD;
            if total as u64 > max_bytes && count > 0 {
                // Drop the oldest lines, as many as the average line size says are over,
                // plus a tenth, so pruning does not run again at once.
                let average = total / count;
                let over = (total as u64 - max_bytes) as i64;
                let n = (over / average.max(1) + 1 + count / 10).min(count);
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY id LIMIT ?1)",
                    params![n],
                )? as u64;
            }
            Ok(deleted)
        })
        .await
    }
}
