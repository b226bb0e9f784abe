//! [`Registry`] on SQLite: functions, versions, aliases and env vars. A deploy writes
//! the artifact, the version and the alias in one transaction.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbResult, EmbeddedStore};
use crate::model::*;
use crate::{NewVersion, Registry, Result, StoreError, registry_rules};

fn not_found_function(name: &FunctionName) -> StoreError {
    StoreError::FunctionNotFound(name.clone())
}

fn function_row(
    conn: &Connection,
    tenant: &TenantId,
    name: &FunctionName,
) -> DbResult<FunctionRecord> {
    conn.query_row(
        "SELECT route, created_at_ms, updated_at_ms FROM functions WHERE tenant = ?1 AND name = ?2",
        params![tenant.as_str(), name.as_str()],
        |r| {
            Ok(FunctionRecord {
                tenant: tenant.clone(),
                name: name.clone(),
                route: r.get(0)?,
                created_at_ms: r.get(1)?,
                updated_at_ms: r.get(2)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| not_found_function(name).into())
}

fn version_numbers(
    conn: &Connection,
    tenant: &TenantId,
    name: &FunctionName,
) -> DbResult<Vec<u32>> {
    let mut stmt = conn.prepare(
        "SELECT version FROM versions WHERE tenant = ?1 AND function = ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<u32>>>()?)
}

fn read_function_records(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> DbResult<Vec<FunctionRecord>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (tenant, name, route, created, updated) = row?;
        out.push(FunctionRecord {
            tenant: tenant.parse()?,
            name: name.parse()?,
            route,
            created_at_ms: created,
            updated_at_ms: updated,
        });
    }
    Ok(out)
}

fn version_from_row(
    tenant: &TenantId,
    name: &FunctionName,
    r: &rusqlite::Row,
) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        tenant: tenant.clone(),
        function: name.clone(),
        version: VersionId(r.get(0)?),
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        manifest: r.get(3)?,
        created_at_ms: r.get(4)?,
        world: r.get(5)?,
    })
}

fn parse_targets(json: &str) -> DbResult<Vec<AliasTarget>> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("alias targets are corrupt: {e}")).into())
}

fn write_alias(
    conn: &Connection,
    tenant: &TenantId,
    name: &FunctionName,
    alias: &AliasName,
    targets: &[AliasTarget],
) -> DbResult<AliasRecord> {
    let json = serde_json::to_string(targets)
        .map_err(|e| StoreError::Backend(format!("cannot encode alias targets: {e}")))?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO aliases (tenant, function, name, targets, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant, function, name) DO UPDATE SET targets = excluded.targets, updated_at_ms = excluded.updated_at_ms",
        params![tenant.as_str(), name.as_str(), alias.as_str(), json, now],
    )?;
    Ok(AliasRecord {
        name: alias.clone(),
        targets: targets.to_vec(),
        updated_at_ms: now,
    })
}

#[async_trait]
impl Registry for EmbeddedStore {
    async fn deploy(&self, new: NewVersion) -> Result<VersionRecord> {
        let (ct, cn) = (new.tenant.clone(), new.function.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let owner: Option<(String, String)> = tx
                .query_row(
                    "SELECT tenant, name FROM functions WHERE tenant = ?1 AND route = ?2",
                    params![new.tenant.as_str(), new.route],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((tenant, name)) = owner
                && (tenant != new.tenant.as_str() || name != new.function.as_str())
            {
                return Err(registry_rules::route_taken(&new.route, &name).into());
            }
            super::tenants::require_tenant(&tx, &new.tenant)?;
            tx.execute(
                "INSERT INTO functions (tenant, name, route, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE SET route = excluded.route, updated_at_ms = excluded.updated_at_ms",
                params![new.tenant.as_str(), new.function.as_str(), new.route, now],
            )?;
            tx.execute(
                "INSERT INTO artifacts (tenant, sha256, size, bytes, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![new.tenant.as_str(), new.sha256, new.component.len() as i64, new.component, now],
            )?;
            // A counter, not max(version)+1, so a deleted version's number is never reused.
            let version: u32 = tx.query_row(
                "INSERT INTO version_counters (tenant, function, last) VALUES (?1, ?2, 1)
                 ON CONFLICT (tenant, function) DO UPDATE SET last = last + 1 RETURNING last",
                params![new.tenant.as_str(), new.function.as_str()],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO versions (tenant, function, version, sha256, size, manifest, created_at_ms, world)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    new.tenant.as_str(),
                    new.function.as_str(),
                    version,
                    new.sha256,
                    new.component.len() as i64,
                    new.manifest,
                    now,
                    new.world
                ],
            )?;
            if let Some(alias) = &new.move_alias {
                write_alias(
                    &tx,
                    &new.tenant,
                    &new.function,
                    alias,
                    &[AliasTarget { version: VersionId(version), weight: 1.0 }],
                )?;
            }
            tx.commit()?;
            Ok(VersionRecord {
                tenant: new.tenant,
                function: new.function,
                version: VersionId(version),
                sha256: new.sha256,
                size: new.component.len() as u64,
                manifest: new.manifest,
                world: new.world,
                created_at_ms: now,
            })
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.with(|conn| {
            read_function_records(
                conn,
                "SELECT tenant, name, route, created_at_ms, updated_at_ms FROM functions ORDER BY tenant, name",
                &[],
            )
        })
        .await
    }

    async fn functions(&self, tenant: &TenantId) -> Result<Vec<FunctionRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            read_function_records(
                conn,
                "SELECT tenant, name, route, created_at_ms, updated_at_ms FROM functions WHERE tenant = ?1 ORDER BY name",
                &[&tenant.as_str()],
            )
        })
        .await
    }

    async fn function(&self, tenant: &TenantId, name: &FunctionName) -> Result<FunctionRecord> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| function_row(conn, &tenant, &name))
            .await
    }

    async fn versions(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<VersionRecord>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT version, sha256, size, manifest, created_at_ms, world FROM versions
                 WHERE tenant = ?1 AND function = ?2 ORDER BY version",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                version_from_row(&tenant, &name, r)
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<VersionRecord> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let found = conn
                .query_row(
                    "SELECT version, sha256, size, manifest, created_at_ms, world FROM versions
                     WHERE tenant = ?1 AND function = ?2 AND version = ?3",
                    params![tenant.as_str(), name.as_str(), version.0],
                    |r| version_from_row(&tenant, &name, r),
                )
                .optional()?;
            match found {
                Some(v) => Ok(v),
                None => {
                    let list = version_numbers(conn, &tenant, &name)?;
                    Err(registry_rules::no_version(&name, version, &list).into())
                }
            }
        })
        .await
    }

    async fn aliases(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<AliasRecord>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT name, targets, updated_at_ms FROM aliases WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (alias, targets, updated) = row?;
                out.push(AliasRecord {
                    name: alias.parse()?,
                    targets: parse_targets(&targets)?,
                    updated_at_ms: updated,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn set_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
        targets: Vec<AliasTarget>,
    ) -> Result<AliasRecord> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name, alias) = (tenant.clone(), name.clone(), alias.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let existing = version_numbers(&tx, &tenant, &name)?;
            for t in &targets {
                if !existing.contains(&t.version.0) {
                    return Err(registry_rules::no_version(&name, t.version, &existing).into());
                }
            }
            let record = write_alias(&tx, &tenant, &name, &alias, &targets)?;
            tx.execute(
                "UPDATE functions SET updated_at_ms = ?3 WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name.as_str(), now_ms()],
            )?;
            tx.commit()?;
            Ok(record)
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn delete_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<()> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name, alias) = (tenant.clone(), name.clone(), alias.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let n = conn.execute(
                "DELETE FROM aliases WHERE tenant = ?1 AND function = ?2 AND name = ?3",
                params![tenant.as_str(), name.as_str(), alias.as_str()],
            )?;
            if n == 0 {
                return Err(registry_rules::no_alias(&name, &alias).into());
            }
            Ok(())
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn delete_function(&self, tenant: &TenantId, name: &FunctionName) -> Result<()> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let (t, n) = (tenant.as_str(), name.as_str());
            for sql in [
                "DELETE FROM aliases WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM versions WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM version_counters WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM env_vars WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM logs WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM functions WHERE tenant = ?1 AND name = ?2",
            ] {
                tx.execute(sql, params![t, n])?;
            }
            delete_unreferenced_artifacts(&tx, &tenant)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<()> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let existing = version_numbers(&tx, &tenant, &name)?;
            if !existing.contains(&version.0) {
                return Err(registry_rules::no_version(&name, version, &existing).into());
            }
            let mut stmt = tx.prepare(
                "SELECT name, targets FROM aliases WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let aliases = stmt
                .query_map(params![tenant.as_str(), name.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(stmt);
            for (alias, targets) in aliases {
                if parse_targets(&targets)?.iter().any(|t| t.version == version) {
                    return Err(registry_rules::version_in_use(&name, &alias, version).into());
                }
            }
            tx.execute(
                "DELETE FROM versions WHERE tenant = ?1 AND function = ?2 AND version = ?3",
                params![tenant.as_str(), name.as_str(), version.0],
            )?;
            delete_unreferenced_artifacts(&tx, &tenant)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn env(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<(String, String)>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT name, value FROM env_vars WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn set_env(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name, key, value) = (
            tenant.clone(),
            name.clone(),
            key.to_string(),
            value.to_string(),
        );
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            conn.execute(
                "INSERT INTO env_vars (tenant, function, name, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, function, name) DO UPDATE SET value = excluded.value",
                params![tenant.as_str(), name.as_str(), key, value],
            )?;
            Ok(())
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }

    async fn unset_env(&self, tenant: &TenantId, name: &FunctionName, key: &str) -> Result<()> {
        let (ct, cn) = (tenant.clone(), name.clone());
        let (tenant, name, key) = (tenant.clone(), name.clone(), key.to_string());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let n = conn.execute(
                "DELETE FROM env_vars WHERE tenant = ?1 AND function = ?2 AND name = ?3",
                params![tenant.as_str(), name.as_str(), key],
            )?;
            if n == 0 {
                return Err(registry_rules::no_env(&name, &key).into());
            }
            Ok(())
        })
        .await
        .inspect(|_| self.changed_function(&ct, &cn))
    }
}

fn delete_unreferenced_artifacts(conn: &Connection, tenant: &TenantId) -> DbResult<()> {
    conn.execute(
        "DELETE FROM artifacts WHERE tenant = ?1 AND sha256 NOT IN
         (SELECT sha256 FROM versions WHERE tenant = ?1)",
        params![tenant.as_str()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::new_version;
    use super::*;

    #[tokio::test]
    async fn deploys_number_versions_and_move_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("glint.db")).unwrap();
        let t = TenantId::default_tenant();
        let v1 = store.deploy(new_version("hello", b"one")).await.unwrap();
        let v2 = store.deploy(new_version("hello", b"two")).await.unwrap();
        assert_eq!((v1.version, v2.version), (VersionId(1), VersionId(2)));
        let name: FunctionName = "hello".parse().unwrap();
        let aliases = store.aliases(&t, &name).await.unwrap();
        assert_eq!(
            aliases[0].targets,
            vec![AliasTarget {
                version: VersionId(2),
                weight: 1.0
            }]
        );

        let err = store
            .delete_version(&t, &name, VersionId(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        store.delete_version(&t, &name, VersionId(1)).await.unwrap();
        let v3 = store.deploy(new_version("hello", b"three")).await.unwrap();
        assert_eq!(
            v3.version,
            VersionId(3),
            "a deleted version's number is not reused"
        );

        let err = store
            .deploy(NewVersion {
                route: "/hello".into(),
                ..new_version("other", b"x")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
}
