//! Splitting the staged roster into `roster_person` and `roster_household`.
//!
//! Each roster file is a snapshot of the households it lists; for every
//! household the most recently committed batch that lists it wins. Both
//! tables carry `roster_version`, a fingerprint of the committed roster
//! batches they were built from, so a refresh interrupted between the two
//! rewrites is finished by the next one, and an unchanged roster is not
//! rewritten at all.
//!
//! `person_id` is a hash of the household number and the member's ID number
//! (or name and relation when the ID is missing), so it stays the same when
//! the same roster is loaded again or other households change.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::lake::Lake;
use crate::lake::query::first_column;
use crate::lake::tables::{BATCHES, ROSTER_HOUSEHOLD, ROSTER_PERSON, ROSTER_SOURCE};

/// Canonical roster fields the split relies on (see schemas/roster.toml).
const REQUIRED_FIELDS: &[&str] = &[
    "household_number",
    "member_id",
    "name",
    "id_number",
    "gender",
    "birth_date",
    "relation",
    "region_code",
    "county_name",
    "township_name",
    "village_name",
    "category",
    "household_size",
    "annual_income",
    "per_capita_income",
    "risk_types",
];

/// The CTEs ending in `cur`: each household's rows from its newest roster
/// batch.
fn current() -> String {
    format!(
        "
WITH b AS (SELECT batch_id AS b_id, finished_at FROM {BATCHES} WHERE source = '{ROSTER_SOURCE}'),
r AS (SELECT s.*, b.finished_at FROM {staged} s JOIN b ON s.batch_id = b.b_id),
latest AS (SELECT household_number AS hn, max(finished_at) AS t FROM r GROUP BY household_number),
cur AS (SELECT r.* FROM r JOIN latest ON r.household_number = latest.hn AND r.finished_at = latest.t)",
        staged = crate::lake::tables::staged(&crate::config::SourceName::roster())
    )
}

fn person_sql(version: &str) -> String {
    let current = current();
    format!(
        "{current}
SELECT
  'P' || substr(encode(sha256(household_number || '|' || coalesce(id_number, name || '|' || coalesce(relation, ''))), 'hex'), 1, 15) AS person_id,
  household_number AS household_id,
  member_id,
  id_number,
  id_number_valid,
  name,
  coalesce(gender, CASE WHEN id_number_valid THEN
      CASE WHEN CAST(substr(id_number, 17, 1) AS INT) % 2 = 1 THEN '男' ELSE '女' END END) AS gender,
  coalesce(birth_date, CASE WHEN id_number_valid THEN to_date(substr(id_number, 7, 8), '%Y%m%d') END) AS birth_date,
  relation,
  region_code AS village_code,
  '{version}' AS roster_version,
  batch_id
FROM cur"
    )
}

fn household_sql(version: &str) -> String {
    let current = current();
    format!(
        "{current}
SELECT
  household_number AS household_id,
  substr(max(region_code), 1, 2) || '0000' AS province_code,
  substr(max(region_code), 1, 4) || '00' AS prefecture_code,
  substr(max(region_code), 1, 6) AS county_code,
  substr(max(region_code), 1, 9) AS township_code,
  max(region_code) AS village_code,
  max(county_name) AS county_name,
  max(township_name) AS township_name,
  max(village_name) AS village_name,
  max(category) AS category,
  max(household_size) AS household_size,
  CAST(count(*) AS BIGINT) AS members_listed,
  max(annual_income) AS annual_income,
  coalesce(max(per_capita_income),
           CAST(max(annual_income) / CAST(nullif(max(household_size), 0) AS DECIMAL(18, 2)) AS DECIMAL(18, 2)))
    AS per_capita_income,
  max(risk_types) AS risk_types,
  '{version}' AS roster_version,
  max(batch_id) AS batch_id
FROM cur
GROUP BY household_number"
    )
}

/// Bring `roster_person` and `roster_household` up to date with the committed
/// roster batches. Returns the roster version, or `None` without a roster.
pub async fn refresh(lake: &Lake) -> Result<Option<String>> {
    let ctx = lake.session().await?;
    let staged_roster = crate::lake::tables::staged(&crate::config::SourceName::roster());
    if !ctx.table_exist(staged_roster.as_str())?
        || !ctx.table_exist(crate::lake::tables::BATCHES)?
    {
        return Ok(None);
    }
    let staged = ctx.table(staged_roster.as_str()).await?;
    let missing: Vec<&str> = REQUIRED_FIELDS
        .iter()
        .copied()
        .filter(|f| staged.schema().field_with_unqualified_name(f).is_err())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the roster schema must define these fields to split the roster: {}",
            missing.join(", ")
        );
    }
    let ids: Vec<String> = first_column(
        &ctx,
        &format!(
            "SELECT batch_id FROM {BATCHES} WHERE source = '{ROSTER_SOURCE}' ORDER BY batch_id"
        ),
    )
    .await?
    .into_iter()
    .flatten()
    .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let version = hex::encode(Sha256::digest(ids.join(",").as_bytes()))[..16].to_string();
    for (table, sql) in [
        (ROSTER_HOUSEHOLD, household_sql(&version)),
        (ROSTER_PERSON, person_sql(&version)),
    ] {
        if ctx.table_exist(table)? {
            let versions = first_column(
                &ctx,
                &format!("SELECT DISTINCT roster_version FROM {table}"),
            )
            .await?;
            if versions == [Some(version.clone())] {
                continue;
            }
        }
        let plan = ctx
            .sql(&sql)
            .await
            .with_context(|| format!("building {table}"))?
            .into_optimized_plan()?;
        lake.overwrite_with_plan(&ctx, table, plan).await?;
        crate::failpoint::hit("roster:after-household");
    }
    Ok(Some(version))
}
