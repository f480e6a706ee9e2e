//! Running a pipeline file: ingest (roster first, so the roster tables exist
//! before anything links to them) → link → warn, one run at a time per lake
//! (`lock`), every stage recorded in the `runs` table (`runs`).

pub mod lock;
pub mod runs;

use anyhow::Result;

use crate::cli::output;
use crate::config::Pipeline;
use crate::config::pipeline::PipelineSource;
use crate::lake::Lake;
use crate::lake::query::{rows_of, scalar_i64, strings_of};
use crate::lake::tables::ROSTER_SOURCE;

/// Sources in run order: the roster first, the rest as listed.
pub fn ordered_sources(pipeline: &Pipeline) -> Vec<&PipelineSource> {
    let mut sources: Vec<&PipelineSource> = pipeline.sources.iter().collect();
    sources.sort_by_key(|s| s.name != ROSTER_SOURCE);
    sources
}

/// Print what the lake holds: rows per table, and the most common
/// quarantine reasons so a clerk sees at once what to fix.
pub async fn print_overview(lake: &Lake) -> Result<()> {
    let ctx = lake.session().await?;
    let mut t = output::table(vec!["table 表", "rows 行数"]);
    for name in lake.table_names().await? {
        if ctx.table_exist(name.as_str())? {
            let n = scalar_i64(&ctx, &format!("SELECT count(*) FROM {name}")).await?;
            t.add_row(vec![name, n.to_string()]);
        }
    }
    println!("lake 数据湖: {}\n{t}", lake.root());

    let mut reasons = output::table(vec!["table 表", "reason 隔离原因", "rows 行数"]);
    let mut any = false;
    for name in lake.table_names().await? {
        if !name.starts_with("quarantine_") || !ctx.table_exist(name.as_str())? {
            continue;
        }
        let sql = format!(
            "SELECT reasons, count(*) AS n FROM {name} GROUP BY reasons ORDER BY n DESC, reasons LIMIT 5"
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let texts = strings_of(batch.column(0))?;
            let counts = strings_of(batch.column(1))?;
            for (text, n) in texts.into_iter().zip(counts) {
                any = true;
                let mut text = text.unwrap_or_default();
                if text.chars().count() > 90 {
                    text = text.chars().take(90).collect::<String>() + "…";
                }
                reasons.add_row(vec![name.clone(), text, n.unwrap_or_default()]);
            }
        }
    }
    if any {
        println!("{reasons}");
    }
    Ok(())
}

/// Print the highest-scoring open warnings with their evidence.
pub async fn print_top_warnings(lake: &Lake, n: usize) -> Result<()> {
    let ctx = lake.session_with(&["warnings"]).await?;
    if !ctx.table_exist("warnings")? {
        return Ok(());
    }
    let sql = format!(
        "SELECT warning_id, household_id, village_code, risk_type, severity, CAST(score AS VARCHAR) AS score_text, evidence
         FROM warnings WHERE status = 'open' ORDER BY score DESC, warning_id LIMIT {n}"
    );
    let mut t = output::table(vec![
        "warning 预警",
        "household 户",
        "village 村",
        "risk 风险",
        "severity 等级",
        "score 分值",
        "evidence 依据",
    ]);
    let mut any = false;
    for row in rows_of(&ctx.sql(&sql).await?.collect().await?)? {
        any = true;
        let cell = |c: &str| row.get(c).cloned().unwrap_or_default();
        let evidence: Vec<crate::warn::state::Evidence> =
            serde_json::from_str(&cell("evidence")).unwrap_or_default();
        let mut text = evidence
            .iter()
            .take(4)
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.event_date.clone().unwrap_or_default(),
                    e.record_key,
                    e.detail
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let more = evidence.len().saturating_sub(4);
        if more > 0 {
            text.push_str(&format!("\n… and {more} more"));
        }
        t.add_row(vec![
            cell("warning_id"),
            cell("household_id"),
            cell("village_code"),
            cell("risk_type"),
            cell("severity"),
            cell("score_text"),
            text,
        ]);
    }
    if any {
        println!("top warnings 重点预警\n{t}");
    }
    Ok(())
}
