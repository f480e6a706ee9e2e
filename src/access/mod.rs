//! Who may see and do what (权限): roles, region scopes, masking of
//! personal identifiers (`views`), the read-only gate (`read_only`), API
//! tokens and the audit log. [`Access`] is the one way every frontend —
//! the SQL shell, the PostgreSQL endpoint, the HTTP API, the console —
//! gets the lake as a caller may see it; no frontend re-applies a check.

pub mod audit;
pub mod limits;
pub mod logins;
pub mod read_only;
pub mod tokens;
pub mod users;
pub mod views;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use datafusion::prelude::{SessionContext, col, lit};
use serde::Serialize;

use crate::config::AccessConfig;
use crate::lake::Lake;
use crate::lake::catalog::SharedTables;
use crate::lake::query::strings_of;
use crate::lake::schemas::SOURCE_SCHEMAS;
use crate::lake::tables::ROSTER_HOUSEHOLD;
use views::ColumnRoles;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, raw values included, and the audit log.
    Admin,
    /// Query every region; identifiers masked; may export results.
    Analyst,
    /// Read warnings and post verification results; identifiers masked.
    Verifier,
    /// Read only; identifiers masked.
    Reader,
}

impl Role {
    /// Every role's name, as users files and tokens spell it.
    pub const NAMES: &[&str] = &["admin", "analyst", "verifier", "reader"];

    /// The role named `text` (any case); an unknown name is an error listing the four.
    pub fn parse(text: &str) -> Result<Role> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "analyst" => Role::Analyst,
            "verifier" => Role::Verifier,
            "reader" => Role::Reader,
            other => bail!("role '{other}' is not one of {}", Self::NAMES.join(", ")),
        })
    }

    /// The role's name, as [`Role::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Verifier => "verifier",
            Role::Reader => "reader",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// The user or token name.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
    /// Administrative code prefix the caller is limited to (None: all).
    pub region: Option<String>,
}

impl Principal {
    /// Whether the caller sees identifiers unmasked (admins only).
    pub fn raw_values(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may write query results to files (admin and
    /// analyst, as docs/sql.md says).
    pub fn can_export(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Analyst)
    }

    /// Whether the caller may record a household visit (admin and verifier).
    pub fn can_verify(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Verifier)
    }

    /// Whether a row with these region codes (any level, most specific
    /// last) is inside the caller's region. Rows with no code are visible
    /// only to unscoped callers.
    pub fn sees_region(&self, codes: &[Option<&str>]) -> bool {
        match &self.region {
            None => true,
            Some(prefix) => codes
                .iter()
                .flatten()
                .any(|code| code.starts_with(prefix.as_str())),
        }
    }
}

/// SQL connections open at once, unless configured (`[sql] max_connections`).
pub const DEFAULT_SQL_CONNECTIONS: usize = 32;
/// API requests served at once, unless configured (`[api] max_requests`).
pub const DEFAULT_API_REQUESTS: usize = 64;

/// Whether a caller may see one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// It exists and is inside the caller's region.
    Visible,
    /// It exists, elsewhere.
    OutsideRegion,
    /// It does not exist.
    Missing,
}

/// Column roles as of one version of `source_schemas`.
type RolesAt = (u64, Arc<ColumnRoles>);

/// The lake as callers may see it: shared table snapshots, the columns the
/// schemas mark as names, ID numbers and birth dates, and the masking
/// policy. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    tables: Arc<SharedTables>,
    /// Roles from the schema files.
    roles: Arc<ColumnRoles>,
    /// Those with the lake's recorded schemas, for one version of
    /// `source_schemas` (reread when it changes).
    recorded_roles: Arc<std::sync::Mutex<Option<RolesAt>>>,
    config: AccessConfig,
    logins: Arc<logins::LoginThrottle>,
    limits: Arc<limits::Limits>,
}

impl Access {
    /// Access to `lake` for a long-running service: tables are opened once
    /// and shared, and reread at most every `snapshot_age`.
    pub fn new(
        lake: Lake,
        schemas_dir: &Path,
        config: AccessConfig,
        snapshot_age: Duration,
    ) -> Result<Access> {
        Ok(Access {
            tables: Arc::new(SharedTables::new(lake, snapshot_age)),
            roles: Arc::new(ColumnRoles::load(schemas_dir)?),
            recorded_roles: Arc::default(),
            config,
            logins: Arc::default(),
            limits: limits::Limits::new(DEFAULT_SQL_CONNECTIONS, DEFAULT_API_REQUESTS),
        })
    }

    /// The same access with these capacity limits.
    pub fn with_limits(mut self, sql_connections: usize, api_requests: usize) -> Access {
        self.limits = limits::Limits::new(sql_connections, api_requests);
        self
    }

    /// Failed logins, counted for every frontend that takes passwords.
    pub fn logins(&self) -> &logins::LoginThrottle {
        &self.logins
    }

    /// Capacity limits and where the service stands.
    pub fn limits(&self) -> &Arc<limits::Limits> {
        &self.limits
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        self.tables.lake()
    }

    /// Which columns of each source hold what.
    pub fn columns(&self) -> &ColumnRoles {
        &self.roles
    }

    /// The lake as `p` may see it: every table a view, masked and scoped;
    /// queries may use `memory_limit` bytes (default: the lake's usual
    /// limit).
    pub async fn session(
        &self,
        p: &Principal,
        memory_limit: Option<usize>,
    ) -> Result<SessionContext> {
        let memory = match memory_limit {
            Some(bytes) => bytes,
            None => crate::lake::catalog::memory_limit_bytes()?,
        };
        let snapshot = self.tables.snapshot().await?;
        let ctx = snapshot.session(memory)?;
        let roles = self
            .roles_for(&ctx, snapshot.version_of(SOURCE_SCHEMAS))
            .await?;
        views::restrict(&ctx, p, &roles, self.config.birth_date_precision).await?;
        Ok(ctx)
    }

    /// The column roles for a session: the files' and the lake's recorded
    /// schemas' (read before the session is restricted).
    async fn roles_for(
        &self,
        ctx: &SessionContext,
        version: Option<u64>,
    ) -> Result<Arc<ColumnRoles>> {
        let Some(version) = version else {
            return Ok(self.roles.clone());
        };
        if let Ok(cached) = self.recorded_roles.lock()
            && let Some((v, roles)) = cached.as_ref()
            && *v == version
        {
            return Ok(roles.clone());
        }
        let recorded = crate::lake::schemas::recorded_in(ctx).await?;
        let roles = Arc::new(self.roles.with(&recorded));
        if let Ok(mut cached) = self.recorded_roles.lock() {
            *cached = Some((version, roles.clone()));
        }
        Ok(roles)
    }

    /// As [`Access::session`], over the tables as they are now: after the
    /// caller's own write, which must show at once.
    pub async fn session_fresh(&self, p: &Principal) -> Result<SessionContext> {
        self.tables.invalidate();
        self.session(p, None).await
    }

    /// Whether `p` may see a household of the roster.
    pub async fn household(&self, p: &Principal, household_id: &str) -> Result<Visibility> {
        self.visibility(p, ROSTER_HOUSEHOLD, "household_id", household_id)
            .await
    }

    /// Whether `p` may see a warning.
    pub async fn warning(&self, p: &Principal, warning_id: &str) -> Result<Visibility> {
        self.visibility(p, crate::lake::tables::WARNINGS, "warning_id", warning_id)
            .await
    }

    /// Look up a row's region codes in the unrestricted tables and judge
    /// them by the caller's region.
    async fn visibility(
        &self,
        p: &Principal,
        table: &str,
        key: &str,
        value: &str,
    ) -> Result<Visibility> {
        let ctx = self.tables.session(64 << 20).await?;
        if !ctx.table_exist(table)? {
            return Ok(Visibility::Missing);
        }
        let batches = ctx
            .table(table)
            .await?
            .filter(col(key).eq(lit(value)))?
            .select_columns(&["county_code", "township_code", "village_code"])?
            .limit(0, Some(1))?
            .collect()
            .await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(Visibility::Missing);
        };
        let codes: Vec<Option<String>> = batch
            .columns()
            .iter()
            .map(|c| strings_of(c).map(|v| v.into_iter().next().flatten()))
            .collect::<Result<_>>()?;
        let codes: Vec<Option<&str>> = codes.iter().map(Option::as_deref).collect();
        Ok(if p.sees_region(&codes) {
            Visibility::Visible
        } else {
            Visibility::OutsideRegion
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_scope_is_a_code_prefix() {
        let county = Principal {
            name: "县办".into(),
            role: Role::Reader,
            region: Some("522322".into()),
        };
        assert!(county.sees_region(&[Some("522322"), Some("522322003204")]));
        assert!(!county.sees_region(&[Some("522323"), Some("522323001001")]));
        assert!(!county.sees_region(&[None]));
        assert!(!county.can_verify() && !county.raw_values());
        assert_eq!(Role::parse(" Admin ").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}
