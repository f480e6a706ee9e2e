//! API bearer tokens (访问令牌), kept in the `api_tokens` lake table.
//!
//! A token reads `snt_<id>_<secret>`. Only the SHA-256 of the secret is
//! stored (the secret is 32 random characters, so a salt adds nothing), and
//! the whole token is shown once, at creation. Revoking appends a row
//! marking the id revoked, so the table is an append-only record of who was
//! given access and when it ended.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Principal, Role};
use crate::lake::Lake;
use crate::lake::query::rows_of;
pub use crate::lake::tables::API_TOKENS;
use crate::lake::tables::timestamp_type;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("token_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("secret_sha256", DataType::Utf8, false),
        Field::new("created_at", timestamp_type(), false),
        Field::new("revoked_at", timestamp_type(), true),
    ]))
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The token's id, as `token revoke` takes it.
    pub token_id: String,
    /// The name it was created with (the audit log's user).
    pub name: String,
    /// The role it grants.
    pub role: String,
    /// The administrative code prefix it is limited to (None: all).
    pub region: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Whether it has been revoked.
    pub revoked: bool,
    #[serde(skip)]
    secret_sha256: String,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Region scopes are administrative code prefixes: province (2 digits),
/// prefecture (4), county (6), township (9) or village (12).
pub fn check_region(region: &str) -> Result<()> {
    if !region.chars().all(|c| c.is_ascii_digit()) || ![2, 4, 6, 9, 12].contains(&region.len()) {
        bail!(
            "region '{region}' must be an administrative code of 2, 4, 6, 9 or 12 digits \
             (province, prefecture, county, township or village)"
        );
    }
    Ok(())
}

async fn append(lake: &Lake, rows: &[(&TokenInfo, bool)]) -> Result<()> {
    let now = Utc::now().timestamp_micros();
    let text = |f: &dyn Fn(&TokenInfo) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(t, _)| f(t)),
        ))
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            text(&|t| t.token_id.clone()),
            text(&|t| t.name.clone()),
            text(&|t| t.role.clone()),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|(t, _)| t.region.clone())
                    .collect::<Vec<_>>(),
            )),
            text(&|t| t.secret_sha256.clone()),
            Arc::new(TimestampMicrosecondArray::from(vec![now; rows.len()]).with_timezone("UTC")),
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|(_, revoked)| revoked.then_some(now))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )?;
    lake.append(API_TOKENS, &schema(), vec![batch]).await
}

/// Issue a token; returns the full token text (shown once) and its id.
pub async fn create(
    lake: &Lake,
    name: &str,
    role: Role,
    region: Option<&str>,
) -> Result<(String, TokenInfo)> {
    if name.trim().is_empty() {
        bail!("a token needs a --name saying who or what uses it");
    }
    if let Some(r) = region {
        check_region(r)?;
    }
    let mut rng = rand::rng();
    let id: String = (0..8)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let info = TokenInfo {
        token_id: id.clone(),
        name: name.trim().to_string(),
        role: role.name().to_string(),
        region: region.map(str::to_string),
        created_at: Utc::now().to_rfc3339(),
        revoked: false,
        secret_sha256: digest(&secret),
    };
    append(lake, &[(&info, false)]).await?;
    Ok((format!("snt_{id}_{secret}"), info))
}

/// Every token, latest state per id.
pub async fn list(lake: &Lake) -> Result<Vec<TokenInfo>> {
    let ctx = lake.session_with(&[API_TOKENS]).await?;
    if !ctx.table_exist(API_TOKENS)? {
        return Ok(Vec::new());
    }
    let batches = ctx
        .sql(&format!(
            "SELECT token_id, name, role, region, secret_sha256,
                    CAST(created_at AS VARCHAR) AS created_at, revoked_at IS NOT NULL AS revoked
             FROM {API_TOKENS} ORDER BY created_at"
        ))
        .await?
        .collect()
        .await?;
    let mut by_id: BTreeMap<String, TokenInfo> = BTreeMap::new();
    for row in rows_of(&batches)? {
        let get = |k: &str| row.get(k).cloned().unwrap_or_default();
        let revoked = get("revoked") == "true";
        match by_id.get_mut(&get("token_id")) {
            Some(existing) => existing.revoked |= revoked,
            None => {
                by_id.insert(
                    get("token_id"),
                    TokenInfo {
                        token_id: get("token_id"),
                        name: get("name"),
                        role: get("role"),
                        region: row.get("region").cloned(),
                        created_at: get("created_at"),
                        revoked,
                        secret_sha256: get("secret_sha256"),
                    },
                );
            }
        }
    }
    let mut tokens: Vec<TokenInfo> = by_id.into_values().collect();
    tokens.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(tokens)
}

/// Revoke the token `token_id`: it stops working within the token cache's lifetime. An unknown id is an error.
pub async fn revoke(lake: &Lake, token_id: &str) -> Result<()> {
    let tokens = list(lake).await?;
    let Some(token) = tokens.iter().find(|t| t.token_id == token_id) else {
        bail!("no token with id {token_id} (see `safetynet token list`)");
    };
    if token.revoked {
        return Ok(());
    }
    append(lake, &[(token, true)]).await
}

/// The principal a presented token stands for, if it is a live token.
pub fn authenticate(tokens: &[TokenInfo], presented: &str) -> Option<Principal> {
    let rest = presented.strip_prefix("snt_")?;
    let (id, secret) = rest.split_once('_')?;
    let token = tokens.iter().find(|t| t.token_id == id && !t.revoked)?;
    // Compare digests in constant time.
    let want = token.secret_sha256.as_bytes();
    let got = digest(secret);
    let got = got.as_bytes();
    if want.len() != got.len() || want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return None;
    }
    Some(Principal {
        name: token.name.clone(),
        role: Role::parse(&token.role).ok()?,
        region: token.region.clone(),
    })
}
