//! Runs and data in the console: the run history stage by stage, each
//! ingested file's rows read, staged and quarantined, and why rows were
//! quarantined, with an example of each reason (masked unless the role
//! sees raw values, as the views mask `raw_text`).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use datafusion::prelude::SessionContext;
use maud::html;

use super::Console;
use super::page::{self, Lang, Viewer};
use super::session::Session;
use crate::api::auth::Rows;
use crate::api::error::ApiResult;
use crate::api::params;
use crate::lake::tables::{BATCHES, RUNS, SourceName};

/// Runs shown.
const RUNS_SHOWN: usize = 20;
/// Ingested files shown.
const FILES: usize = 50;

/// The rows of `sql`, or none when `table` is not in the caller's view.
async fn rows(
    ctx: &SessionContext,
    table: &str,
    sql: &str,
) -> ApiResult<Vec<BTreeMap<String, String>>> {
    if !ctx.table_exist(table)? {
        return Ok(Vec::new());
    }
    page::query_rows(ctx, sql).await
}

/// GET /ui/runs
pub async fn history(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(lang): Extension<Lang>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    let p = &session.principal;
    let ctx = console.app.access.session(p, None).await?;
    let runs = rows(
        &ctx,
        RUNS,
        &format!(
            "WITH recent AS (SELECT run_id FROM {RUNS} GROUP BY run_id ORDER BY max(started_at) DESC LIMIT {RUNS_SHOWN})
             SELECT r.run_id, r.pipeline, r.stage, r.status,
                    CAST(date_trunc('second', r.started_at) AS VARCHAR) AS started,
                    CAST(round(CAST(CAST(r.finished_at AS BIGINT) - CAST(r.started_at AS BIGINT) AS DOUBLE) / 1e6, 1) AS VARCHAR) AS seconds,
                    r.rows_in, r.rows_out, r.quarantined, r.linked, r.review, r.unlinked,
                    r.warnings_raised, r.error
             FROM {RUNS} r JOIN recent USING (run_id)
             ORDER BY r.started_at DESC"
        ),
    )
    .await?;
    let files = rows(
        &ctx,
        BATCHES,
        &format!(
            "SELECT source, file_name, format, encoding, rows_read, rows_staged, rows_quarantined,
                    CAST(date_trunc('second', finished_at) AS VARCHAR) AS finished
             FROM {BATCHES} ORDER BY finished_at DESC LIMIT {FILES}"
        ),
    )
    .await?;
    let mut reasons = Vec::new();
    let sources: Vec<SourceName> = files
        .iter()
        .filter_map(|f| SourceName::new(f.get("source")?).ok())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for source in &sources {
        let table = crate::lake::tables::quarantine(source);
        for mut r in rows(
            &ctx,
            &table,
            &format!(
                "SELECT reasons, CAST(count(*) AS VARCHAR) AS n, min(source_file) AS file,
                        CAST(min(line) AS VARCHAR) AS line, min(raw_text) AS example
                 FROM {table} GROUP BY reasons ORDER BY count(*) DESC, reasons LIMIT 10"
            ),
        )
        .await?
        {
            r.insert("source".into(), source.to_string());
            reasons.push(r);
        }
    }
    let title = lang.t("运行记录", "Runs");
    let body = html! {
        h1 { (title) }
        @if runs.is_empty() {
            p { (lang.t("还没有运行记录。", "No runs yet.")) }
        } @else {
            (page::table(lang, lang.t("最近的运行（按阶段）", "Recent runs, stage by stage"), &runs, &[
                ("run_id", "运行编号", "Run", false),
                ("stage", "阶段", "Stage", false),
                ("status", "状态", "Status", false),
                ("started", "开始时间 (UTC)", "Started (UTC)", false),
                ("seconds", "用时（秒）", "Seconds", true),
                ("rows_in", "读入", "Rows in", true),
                ("quarantined", "隔离", "Quarantined", true),
                ("linked", "已匹配", "Linked", true),
                ("review", "待复核", "Review", true),
                ("unlinked", "未匹配", "Unlinked", true),
                ("warnings_raised", "新预警", "Warnings raised", true),
                ("error", "错误", "Error", false),
            ]))
        }
        @if !files.is_empty() {
            (page::table(lang, lang.t("最近导入的文件", "Files ingested lately"), &files, &[
                ("source", "来源", "Source", false),
                ("file_name", "文件", "File", false),
                ("format", "格式", "Format", false),
                ("encoding", "编码", "Encoding", false),
                ("rows_read", "读入行数", "Rows read", true),
                ("rows_staged", "入库行数", "Rows staged", true),
                ("rows_quarantined", "隔离行数", "Rows quarantined", true),
                ("finished", "完成时间 (UTC)", "Finished (UTC)", false),
            ]))
        }
        @if !reasons.is_empty() {
            (page::table(lang, lang.t("隔离原因（每个原因一例）", "Why rows were quarantined, one example each"), &reasons, &[
                ("source", "来源", "Source", false),
                ("reasons", "原因", "Reasons", false),
                ("n", "行数", "Rows", true),
                ("file", "文件", "File", false),
                ("line", "行号", "Line", true),
                ("example", "原文", "Raw text", false),
            ]))
        }
    };
    let n = runs.len() + files.len() + reasons.len();
    let viewer = Viewer {
        principal: p,
        csrf: &session.csrf,
    };
    let mut response = page::respond(
        StatusCode::OK,
        page::page(lang, title, "/ui/runs", Some(&viewer), body),
    );
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}
