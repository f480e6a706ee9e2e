//! The review queue (人工复核): the records the linker was unsure of, one
//! at a time, beside their best candidate on the roster, with the
//! characters that differ marked and the comparison weights as a
//! waterfall. Clerks decide with the keyboard (`y` match, `n` no match,
//! `s` skip, `u` undo, arrows to move) or the buttons; a blind mode hides
//! the model's figures for clerks labelling pairs for evaluation.
//!
//! Decisions are appended to `review_decisions` by the same function as
//! `safetynet review import` (`link::review::record`), with the clerk as
//! reviewer and `console` as the file; the next link run follows them. An
//! undo appends `undone`, so the history stays whole and the pair is the
//! model's again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use axum::Extension;
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use datafusion::prelude::SessionContext;
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::page::{self, Lang, Viewer};
use super::session::Session;
use crate::access::{Principal, Role};
use crate::api::auth::Rows;
use crate::api::error::{ApiError, ApiResult};
use crate::api::params;
use crate::config::SourceName;
use crate::lake::query::{bound, rows_of};
use crate::link::plan::REVIEW_DECISIONS;
use crate::link::review::{Decision, band_sql, record};
use crate::link::settings::SettingsFile;

/// Items put on one page of the queue.
const PAGE: usize = 100;

/// Where the queue finds the linkage settings and the source schemas.
#[derive(Debug, Clone)]
pub struct ReviewSetup {
    /// The schemas directory (for lakes that record no schema).
    pub schemas_dir: PathBuf,
    /// The linkage settings file.
    pub linkage: PathBuf,
}

/// Deciding links is the data office's work: admins and analysts.
fn may_review(p: &Principal) -> ApiResult<()> {
    if matches!(p.role, Role::Admin | Role::Analyst) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "role {} may not decide review items (人工复核由管理员和分析员完成)",
            p.role.name()
        )))
    }
}

/// A source name from a request; anything else is a 400.
fn source_name(text: &str) -> ApiResult<SourceName> {
    SourceName::new(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Sources that have been linked, as the caller's session shows them.
pub(super) fn linked_sources(ctx: &SessionContext) -> Vec<SourceName> {
    ctx.catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| crate::lake::tables::source_of_link_table(&t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Pairs of `source` whose latest decision is a match or no match: out
/// of the queue.
async fn decided(
    ctx: &SessionContext,
    source: &SourceName,
) -> ApiResult<BTreeSet<(String, String)>> {
    if !ctx.table_exist(REVIEW_DECISIONS)? {
        return Ok(BTreeSet::new());
    }
    let batches = bound(
        ctx,
        &format!(
            "SELECT record_key, person_id FROM (
               SELECT record_key, person_id, decision,
                      row_number() OVER (PARTITION BY record_key, person_id ORDER BY decided_at DESC) AS n
               FROM {REVIEW_DECISIONS} WHERE source = $1)
             WHERE n = 1 AND decision <> 'undone'"
        ),
        &[source],
    )
    .await?
    .collect()
    .await?;
    Ok(rows_of(&batches)?
        .into_iter()
        .filter_map(|r| Some((r.get("record_key")?.clone(), r.get("person_id")?.clone())))
        .collect())
}

/// The review band of `source` as `p` sees it, and the record key column.
async fn band(
    console: &Console,
    ctx: &SessionContext,
    source: &SourceName,
) -> ApiResult<(Vec<BTreeMap<String, String>>, String)> {
    let Some(setup) = &console.review else {
        return Err(ApiError::unavailable(
            "the console was started without linkage settings (未配置关联设置)",
        ));
    };
    let settings = SettingsFile::load(&setup.linkage)?;
    let recorded = crate::lake::schemas::recorded_in(ctx).await?;
    let key = crate::lake::schemas::pick(&recorded, &setup.schemas_dir, source)?.key;
    let Some(sql) = band_sql(ctx, &recorded, &setup.schemas_dir, &settings, source).await? else {
        return Err(ApiError::not_found(format!(
            "source '{source}' has not been linked"
        )));
    };
    let batches = ctx.sql(&sql).await?.collect().await?;
    Ok((rows_of(&batches)?, key))
}

/// Each review pair's comparison levels and weights, by record key.
async fn weights(
    ctx: &SessionContext,
    source: &SourceName,
    key: &str,
) -> ApiResult<BTreeMap<String, BTreeMap<String, String>>> {
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(k.\"{}\" AS VARCHAR) AS review_record_key, k.* FROM {} k WHERE k.status = 'review'",
            key.replace('"', "\"\""),
            crate::lake::tables::link_table(source)
        ))
        .await?
        .collect()
        .await?;
    Ok(rows_of(&batches)?
        .into_iter()
        .filter_map(|r| Some((r.get("review_record_key")?.clone(), r)))
        .collect())
}

/// The two values with the characters that differ marked.
fn diff(left: &str, right: &str) -> (Markup, Markup) {
    let (l, r): (Vec<char>, Vec<char>) = (left.chars().collect(), right.chars().collect());
    let side = |mine: &[char], theirs: &[char]| {
        html! {
            @for (i, c) in mine.iter().enumerate() {
                @if theirs.get(i) == Some(c) { (c) } @else { mark { (c) } }
            }
        }
    };
    (side(&l, &r), side(&r, &l))
}

/// The comparison weights as a waterfall, drawn as SVG: the prior, each
/// comparison's step up or down, and the total.
fn waterfall(lang: Lang, link: &BTreeMap<String, String>) -> Markup {
    let total: f64 = link
        .get("match_weight")
        .and_then(|w| w.parse().ok())
        .unwrap_or(0.0);
    let mut steps: Vec<(String, f64)> = link
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_suffix("_weight")?;
            if name == "match" {
                return None;
            }
            let level = link
                .get(&format!("{name}_level"))
                .cloned()
                .unwrap_or_default();
            Some((format!("{name}: {level}"), v.parse::<f64>().ok()?))
        })
        .collect();
    let prior = total - steps.iter().map(|(_, w)| w).sum::<f64>();
    steps.insert(0, (lang.t("先验", "prior").to_string(), prior));
    let mut running = 0.0;
    let mut bars = Vec::new();
    for (label, w) in &steps {
        bars.push((label.clone(), running, running + w));
        running += w;
    }
    bars.push((lang.t("合计", "total").to_string(), 0.0, total));
    let lo = bars.iter().map(|b| b.1.min(b.2)).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.1.max(b.2)).fold(0.0, f64::max);
    let (left, width, row) = (170.0, 300.0, 22.0);
    let x = |v: f64| left + (v - lo) / (hi - lo).max(1e-9) * width;
    let height = row * bars.len() as f64 + 6.0;
    html! {
        svg class="waterfall" role="img" viewBox={ "0 0 " (left + width + 60.0) " " (height) }
            aria-label=(lang.t("各比较项的权重", "Weight of each comparison")) {
            line x1=(x(0.0)) x2=(x(0.0)) y1="0" y2=(height) class="axis" {}
            @for (i, (label, from, to)) in bars.iter().enumerate() {
                @let y = i as f64 * row + 3.0;
                text x="0" y=(y + 14.0) { (label) }
                rect x=(x(from.min(*to))) y=(y) width=((x(from.max(*to)) - x(from.min(*to))).max(1.0)) height=(row - 6.0)
                    class=(if i + 1 == bars.len() { "total" } else if to >= from { "up" } else { "down" }) {}
                text x=(x(from.max(*to)) + 4.0) y=(y + 14.0) class="value" { (format!("{:+.2}", to - from)) }
            }
        }
    }
}

fn item(
    lang: Lang,
    session: &Session,
    i: usize,
    n: usize,
    r: &BTreeMap<String, String>,
    link: Option<&BTreeMap<String, String>>,
    blind: bool,
) -> Markup {
    let get = |k: &str| r.get(k).cloned().unwrap_or_default();
    let fields: [(&str, &str, &str); 5] = [
        ("name", "姓名", "Name"),
        ("id_number", "身份证号", "ID number"),
        ("birth_date", "出生日期", "Birth date"),
        ("gender", "性别", "Gender"),
        ("region", "地区代码", "Region"),
    ];
    html! {
        article class="item" id={ "item-" (i) } hidden[i > 0] tabindex="-1"
            data-source=(get("source")) data-record=(get("record_key")) data-person=(get("person_id")) {
            h2 { (lang.t("记录", "Record")) " " (get("record_key")) " · " (get("source")) span class="code" { " (" (i + 1) "/" (n) ")" } }
            table class="pair" {
                thead { tr {
                    th scope="col" { (lang.t("字段", "Field")) }
                    th scope="col" { (lang.t("部门记录", "Department record")) }
                    th scope="col" { (lang.t("名册候选人", "Roster candidate")) " " span class="code" { (get("person_id")) } }
                } }
                tbody {
                    @for (key, zh, en) in fields {
                        @let (a, b) = diff(&get(&format!("record_{key}")), &get(&format!("roster_{key}")));
                        tr { th scope="row" { (lang.t(zh, en)) } td { (a) } td { (b) } }
                    }
                }
            }
            @if !blind {
                p class="model" {
                    (lang.t("匹配概率", "Match probability")) " " strong { (get("match_probability")) }
                    " · " (lang.t("匹配权重", "Match weight")) " " (get("match_weight"))
                }
                @if let Some(link) = link { (waterfall(lang, link)) }
            }
            form method="post" action="/ui/review/decision" class="decide" {
                input type="hidden" name="_csrf" value=(session.csrf);
                input type="hidden" name="source" value=(get("source"));
                input type="hidden" name="record_key" value=(get("record_key"));
                input type="hidden" name="person_id" value=(get("person_id"));
                @if blind { input type="hidden" name="blind" value="1"; }
                label for={ "note-" (i) } { (lang.t("理由（可不填）", "Reason (optional)")) }
                input type="text" id={ "note-" (i) } name="note";
                div class="buttons" {
                    button type="submit" name="decision" value="match" { (lang.t("是同一人", "Same person")) " (y)" }
                    button type="submit" name="decision" value="no_match" class="secondary" { (lang.t("不是", "Not the same")) " (n)" }
                }
            }
        }
    }
}

/// GET /ui/review[?source=…][&blind=1]
pub async fn queue(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(lang): Extension<Lang>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = params::query(raw.as_deref(), &["source", "blind"])?;
    let p = &session.principal;
    may_review(p)?;
    let blind = q.get("blind").is_some_and(|v| v == "1");
    let ctx = console.app.access.session(p, None).await?;
    let title = lang.t("人工复核", "Review queue");
    let (body, rows) = match q.get("source").filter(|s| !s.is_empty()) {
        None => {
            let mut counts = Vec::new();
            for source in linked_sources(&ctx) {
                let (band, _) = band(&console, &ctx, &source).await?;
                let done = decided(&ctx, &source).await?;
                let left = band.iter().filter(|r| !is_decided(&done, r)).count();
                counts.push((source, band.len(), left));
            }
            let body = html! {
                h1 { (title) }
                @if counts.is_empty() {
                    p { (lang.t("还没有关联结果：先运行流水线。", "Nothing linked yet: run the pipeline first.")) }
                } @else {
                    table class="list" {
                        caption { (lang.t("各来源待复核的记录", "Records to review, by source")) }
                        thead { tr {
                            th scope="col" { (lang.t("来源", "Source")) }
                            th scope="col" class="num" { (lang.t("待复核", "Left")) }
                            th scope="col" class="num" { (lang.t("复核区间内", "In the review band")) }
                            th scope="col" { (lang.t("开始", "Start")) }
                        } }
                        tbody {
                            @for (source, total, left) in &counts {
                                tr {
                                    th scope="row" { (source) }
                                    td class="num" { (left) }
                                    td class="num" { (total) }
                                    td {
                                        a href={ "/ui/review?source=" (source) } { (lang.t("复核", "Review")) }
                                        " · "
                                        a href={ "/ui/review?source=" (source) "&blind=1" } { (lang.t("盲评（不显示模型结果）", "Blind (no model figures)")) }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            (body, counts.len())
        }
        Some(source) => {
            let source = source_name(source)?;
            let (band, key) = band(&console, &ctx, &source).await?;
            let done = decided(&ctx, &source).await?;
            let pending: Vec<&BTreeMap<String, String>> = band
                .iter()
                .filter(|r| !is_decided(&done, r))
                .take(PAGE)
                .collect();
            let left = band.iter().filter(|r| !is_decided(&done, r)).count();
            let links = if blind {
                BTreeMap::new()
            } else {
                weights(&ctx, &source, &key).await?
            };
            let n = pending.len();
            let body = html! {
                h1 { (title) " · " (source) @if blind { " · " (lang.t("盲评", "blind")) } }
                p id="progress" aria-live="polite" data-left=(left) {
                    (lang.t("剩余", "Left")) " " span id="left" { (left) } " / "
                    (lang.t("共", "of")) " " (band.len())
                    " · " (lang.t("本页已决定", "Decided on this page")) " " span id="decided" { "0" }
                }
                p class="keys" {
                    kbd { "y" } " " (lang.t("是同一人", "same person")) " · "
                    kbd { "n" } " " (lang.t("不是", "not the same")) " · "
                    kbd { "s" } " " (lang.t("跳过", "skip")) " · "
                    kbd { "u" } " " (lang.t("撤销上一个决定", "undo the last decision")) " · "
                    kbd { "←" } " " kbd { "→" } " " (lang.t("上一条 / 下一条", "previous / next"))
                }
                @if pending.is_empty() {
                    p class="saved" { (lang.t("这个来源没有待复核的记录了。", "Nothing left to review for this source.")) }
                }
                section class="review" data-blind=(blind) {
                    @for (i, r) in pending.iter().enumerate() {
                        (item(lang, &session, i, n, r, links.get(r.get("record_key").map_or("", String::as_str)), blind))
                    }
                }
                p { a href="/ui/review" { (lang.t("返回来源列表", "Back to the sources")) } }
            };
            (body, n)
        }
    };
    let viewer = Viewer {
        principal: p,
        csrf: &session.csrf,
    };
    let mut response = page::respond(
        StatusCode::OK,
        page::page(lang, title, "/ui/review", Some(&viewer), body),
    );
    response.extensions_mut().insert(Rows(rows));
    Ok(response)
}

fn is_decided(done: &BTreeSet<(String, String)>, r: &BTreeMap<String, String>) -> bool {
    match (r.get("record_key"), r.get("person_id")) {
        (Some(k), Some(p)) => done.contains(&(k.clone(), p.clone())),
        _ => false,
    }
}

/// The decision form (the buttons, or the page's script for the keys).
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    source: String,
    record_key: String,
    person_id: String,
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    blind: Option<String>,
}

/// POST /ui/review/decision: a script call (it sends `X-CSRF-Token`) gets
/// 204; a form is sent back to the queue.
pub async fn decide(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> ApiResult<Response> {
    let p = &session.principal;
    may_review(p)?;
    let source = source_name(&form.source)?;
    let decision = params::one_of("decision", &form.decision, crate::link::review::DECISIONS)?;
    let ctx = console.app.access.session(p, None).await?;
    let (band, _) = band(&console, &ctx, &source).await?;
    let in_band = band.iter().any(|r| {
        r.get("record_key") == Some(&form.record_key) && r.get("person_id") == Some(&form.person_id)
    });
    if !in_band {
        return Err(ApiError::not_found(format!(
            "record {} and candidate {} are not in {source}'s review queue",
            form.record_key, form.person_id
        )));
    }
    if decision == "undone" {
        let latest = latest_decision(&ctx, &source, &form.record_key, &form.person_id).await?;
        match latest {
            Some((d, reviewer)) if d != "undone" && reviewer == p.name => {}
            _ => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "only your own latest decision can be undone (只能撤销自己最近的决定)",
                ));
            }
        }
    }
    let note = form.note.trim();
    record(
        console.app.lake(),
        &[Decision {
            source: source.to_string(),
            record_key: form.record_key.clone(),
            person_id: form.person_id.clone(),
            decision,
            reviewer: Some(p.name.clone()),
            note: (!note.is_empty()).then(|| note.to_string()),
        }],
        "console",
    )
    .await?;
    console.app.access.session_fresh(p).await?;
    let mut response = if headers.contains_key("x-csrf-token") {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let blind = if form.blind.is_some() { "&blind=1" } else { "" };
        Redirect::to(&format!("/ui/review?source={source}{blind}")).into_response()
    };
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}

/// The latest decision on a pair and who took it.
async fn latest_decision(
    ctx: &SessionContext,
    source: &SourceName,
    record_key: &str,
    person_id: &str,
) -> ApiResult<Option<(String, String)>> {
    if !ctx.table_exist(REVIEW_DECISIONS)? {
        return Ok(None);
    }
    let batches = bound(
        ctx,
        &format!(
            "SELECT decision, reviewer FROM {REVIEW_DECISIONS}
             WHERE source = $1 AND record_key = $2 AND person_id = $3
             ORDER BY decided_at DESC LIMIT 1"
        ),
        &[source, record_key, person_id],
    )
    .await?
    .collect()
    .await?;
    Ok(rows_of(&batches)?.into_iter().next().map(|r| {
        (
            r.get("decision").cloned().unwrap_or_default(),
            r.get("reviewer").cloned().unwrap_or_default(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_characters_are_marked_on_both_sides() {
        let (a, b) = diff("张小三", "张晓三");
        assert_eq!(a.into_string(), "张<mark>小</mark>三");
        assert_eq!(b.into_string(), "张<mark>晓</mark>三");
        let (a, b) = diff("1990-01-01", "1990-01-01");
        assert!(!a.into_string().contains("mark") && !b.into_string().contains("mark"));
        let (a, _) = diff("王五六", "王五");
        assert_eq!(a.into_string(), "王五<mark>六</mark>");
    }

    #[test]
    fn the_waterfall_ends_at_the_match_weight() {
        let link: BTreeMap<String, String> = [
            ("match_weight", "3.5"),
            ("name_level", "exact"),
            ("name_weight", "10.5"),
            ("region_level", "other"),
            ("region_weight", "-2.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let svg = waterfall(Lang::En, &link).into_string();
        // prior = 3.5 - 10.5 + 2.0 = -5.0
        for text in [
            "prior",
            "-5.00",
            "name: exact",
            "+10.50",
            "region: other",
            "-2.00",
            "total",
            "+3.50",
        ] {
            assert!(svg.contains(text), "{text} missing in {svg}");
        }
    }

    #[test]
    fn only_plain_source_names_reach_the_sql() {
        assert!(source_name("health").is_ok());
        for bad in ["", "health'; --", "a b", "x\"y"] {
            assert!(source_name(bad).is_err(), "{bad}");
        }
    }
}
