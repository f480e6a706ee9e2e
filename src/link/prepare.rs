//! The two sides of linking as views with standard columns: `l`, the
//! department records, and `r`, the registry people. Standard columns come
//! from the schema's roles, so a county's own column names do not matter:
//! record_key, name, id_number, id_number_raw, id_number_valid, birth_date,
//! birth_date_from_id, gender, region_code, county_code, name_key,
//! name_pinyin, surname; plus
//! person_id and household_id on the registry side. Every other column of
//! the source is kept as it is.

use std::collections::HashSet;

use anyhow::{Result, bail};
use datafusion::prelude::SessionContext;

use crate::config::{Role, SourceSchema};
use crate::lake::tables;

const STANDARD: &[&str] = &[
    "record_key",
    "person_id",
    "household_id",
    "name",
    "id_number",
    "id_number_raw",
    "id_number_valid",
    "birth_date",
    "birth_date_from_id",
    "gender",
    "region_code",
    "county_code",
    "name_key",
    "name_pinyin",
    "surname",
];

/// A source field named like a standard column is refused unless it is the
/// field that column is read from: otherwise the standard column would
/// silently take its place (a source's own `surname` replaced by the first
/// character of a person name it may not even have).
fn refuse_shadowed_fields(schema: &SourceSchema) -> Result<()> {
    for field in &schema.fields {
        if !STANDARD.contains(&field.name.as_str()) {
            continue;
        }
        let fills = match field.name.as_str() {
            "record_key" => schema.key == field.name,
            "name" => field.role == Some(Role::PersonName),
            "id_number" => field.role == Some(Role::IdNumber),
            "birth_date" => field.role == Some(Role::BirthDate),
            "gender" => field.role == Some(Role::Gender),
            "region_code" => field.role == Some(Role::RegionCode),
            _ => false,
        };
        if !fills {
            Err(crate::error::Error::settings(
                format!("the schema of source '{}'", schema.name),
                format!("field {}", field.name),
                format!(
                    "'{}' is a column the linker makes itself ({}); rename the field in the schema (for example to '{}_value') so that linkage settings can name it",
                    field.name,
                    STANDARD.join(", "),
                    field.name
                ),
            ))?;
        }
    }
    Ok(())
}

/// Columns derived from the name, shared by both sides.
fn name_columns(name: &str) -> String {
    format!(
        "sn_name_key({name}) AS name_key, sn_pinyin({name}) AS name_pinyin, substr(sn_name_key({name}), 1, 1) AS surname"
    )
}

/// SQL selecting a staged source with the standard columns.
pub async fn source_view_sql(
    ctx: &SessionContext,
    schema: &SourceSchema,
    registry: bool,
) -> Result<String> {
    view_sql(ctx, schema, registry, false).await
}

/// The records whose ID number is valid, made to look like records without
/// one: the ID columns empty (and so the birth date and gender the record
/// itself gives, not the ID's), the number kept apart as `labelled_id`.
/// What the linker does with them shows what it does with records that
/// really have no ID, and their ID tells whether it was right
/// (`calibrate`). None when the source has no ID number.
pub async fn labelled_view_sql(
    ctx: &SessionContext,
    schema: &SourceSchema,
) -> Result<Option<String>> {
    if schema.field_with_role(Role::IdNumber).is_none() {
        return Ok(None);
    }
    Ok(Some(view_sql(ctx, schema, false, true).await?))
}

async fn view_sql(
    ctx: &SessionContext,
    schema: &SourceSchema,
    registry: bool,
    labelled: bool,
) -> Result<String> {
    refuse_shadowed_fields(schema)?;
    let table = tables::staged(&schema.name);
    if !ctx.table_exist(table.as_str())? {
        bail!(
            "nothing ingested for source '{}' (no table {table})",
            schema.name
        );
    }
    let present: HashSet<String> = ctx
        .table(table.as_str())
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let role = |r: Role| schema.field_with_role(r).map(|f| f.name.clone());
    let or_null = |c: &Option<String>, cast: &str| {
        c.clone().unwrap_or_else(|| format!("CAST(NULL AS {cast})"))
    };
    let name = or_null(&role(Role::PersonName), "VARCHAR");
    let own_id = role(Role::IdNumber);
    let id = if labelled { None } else { own_id.clone() };
    let id_col = or_null(&id, "VARCHAR");
    let id_raw = id
        .as_ref()
        .map_or("CAST(NULL AS VARCHAR)".to_string(), |c| format!("{c}_raw"));
    let id_valid = id.as_ref().map_or("false".to_string(), |c| {
        format!("coalesce({c}_valid, false)")
    });
    let birth = or_null(&role(Role::BirthDate), "DATE");
    let gender = or_null(&role(Role::Gender), "VARCHAR");
    let region = or_null(&role(Role::RegionCode), "VARCHAR");
    let key = &schema.key;
    let (person, household) = if registry {
        (
            format!("CAST({key} AS VARCHAR)"),
            "CAST(NULL AS VARCHAR)".to_string(),
        )
    } else {
        (
            "CAST(NULL AS VARCHAR)".to_string(),
            "CAST(NULL AS VARCHAR)".to_string(),
        )
    };
    let excluded: Vec<&str> = STANDARD
        .iter()
        .copied()
        .filter(|c| present.contains(*c))
        .collect();
    let rest = if excluded.is_empty() {
        "*".to_string()
    } else {
        format!("* EXCLUDE ({})", excluded.join(", "))
    };
    Ok(format!(
        "SELECT CAST({key} AS VARCHAR) AS record_key, {person} AS person_id, {household} AS household_id,
           {name} AS name, {id_col} AS id_number, {id_raw} AS id_number_raw, {id_valid} AS id_number_valid,
           CASE WHEN {id_valid} THEN sn_id_birth({id_col}) ELSE coalesce({birth}, sn_id_birth({id_col})) END AS birth_date,
           -- The birth date read from a number that fails the check: the
           -- ID comparison's near levels already count these digits.
           (NOT {id_valid} AND {birth} IS NULL AND sn_id_birth({id_col}) IS NOT NULL) AS birth_date_from_id,
           CASE WHEN {id_valid} THEN sn_id_gender({id_col}) ELSE coalesce({gender}, sn_id_gender({id_col})) END AS gender,
           {region} AS region_code, substr({region}, 1, 6) AS county_code,
           {names},
           {labelled_id}{rest}
         FROM {table}{only_valid}",
        names = name_columns(&name),
        labelled_id = match (&own_id, labelled) {
            (Some(c), true) => format!("{c} AS labelled_id, "),
            _ => String::new(),
        },
        only_valid = match (&own_id, labelled) {
            (Some(c), true) => format!(" WHERE coalesce({c}_valid, false)"),
            _ => String::new(),
        },
    ))
}

/// SQL selecting the roster as the registry side.
pub fn roster_view_sql() -> String {
    format!(
        "SELECT p.person_id AS record_key, p.person_id, p.household_id, p.name, p.id_number,
           p.id_number AS id_number_raw, coalesce(p.id_number_valid, false) AS id_number_valid,
           p.birth_date, false AS birth_date_from_id, p.gender, h.village_code AS region_code, h.county_code,
           {names},
           p.member_id, p.relation, h.category
         FROM {person} p LEFT JOIN {household} h ON p.household_id = h.household_id",
        names = name_columns("p.name"),
        person = tables::ROSTER_PERSON,
        household = tables::ROSTER_HOUSEHOLD,
    )
}
