//! Warnings in the console: counts by place, drilled down from province to
//! village (省 → 市 → 县 → 乡镇 → 村) with filters; a village's warnings;
//! one warning with its evidence, the household's assessment, its history
//! and the household's timeline; and the form that records a visit.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::Console;
use super::page::{self, Lang, Viewer, word};
use super::session::Session;
use crate::api::auth::Rows;
use crate::api::error::{ApiError, ApiResult};
use crate::api::params;
use crate::api::warnings::{
    VerificationBody, events_of, load_one, record_verification, severities, statuses,
    visit_outcomes,
};
use crate::lake::query::{bound, rows_of};
use crate::lake::tables::ROSTER_HOUSEHOLD;
use crate::warn::rules::RISK_TYPES;
use crate::warn::store::WARNINGS;

/// Lengths of the administrative codes of each level, province to village.
const LEVELS: [usize; 5] = [2, 4, 6, 9, 12];

/// Provinces by the first two digits of their codes (GB/T 2260); the
/// roster names counties, townships and villages, not provinces.
const PROVINCES: &[(&str, &str)] = &[
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
];

/// Warnings listed on one village's page at most.
const VILLAGE_LIST: usize = 500;

fn level_name(lang: Lang, len: usize) -> &'static str {
    match len {
        2 => lang.t("省", "Province"),
        4 => lang.t("市（州）", "Prefecture"),
        6 => lang.t("县（区）", "County"),
        9 => lang.t("乡镇", "Township"),
        _ => lang.t("村", "Village"),
    }
}

/// The filters of the warnings pages.
#[derive(Debug, Default)]
struct Filters {
    place: String,
    status: Option<String>,
    risk_type: Option<String>,
    severity: Option<String>,
}

impl Filters {
    fn parse(raw: Option<&str>, session: &Session) -> ApiResult<Filters> {
        let q = params::query(raw, &["place", "status", "risk_type", "severity"])?;
        let given = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut place = given("place").unwrap_or_default().to_string();
        if !place.is_empty()
            && (!LEVELS.contains(&place.len()) || !place.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(ApiError::bad_request(format!(
                "place '{place}' must be an administrative code of 2, 4, 6, 9 or 12 digits (地区代码)"
            )));
        }
        // A place above the user's region shows the region.
        if let Some(scope) = &session.principal.region
            && scope.starts_with(place.as_str())
        {
            place = scope.clone();
        }
        if let Some(region) = params::effective_region(
            &session.principal,
            Some(place.clone()).filter(|p| !p.is_empty()),
        )? {
            place = region;
        }
        Ok(Filters {
            place,
            status: given("status")
                .map(|v| params::one_of("status", v, &statuses()))
                .transpose()?,
            risk_type: given("risk_type")
                .map(|v| params::one_of("risk_type", v, RISK_TYPES))
                .transpose()?,
            severity: given("severity")
                .map(|v| params::one_of("severity", v, &severities()))
                .transpose()?,
        })
    }

    /// The filters chosen beside the place, by column.
    fn chosen(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("status", &self.status),
            ("risk_type", &self.risk_type),
            ("severity", &self.severity),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.as_deref().map(|v| (column, v)))
    }

    /// The filters as a condition on `w`, with `$1`, `$2`, … standing for
    /// [`Self::values`], in that order: what the clerk chose is bound, not
    /// pasted into the SQL.
    fn sql(&self) -> String {
        let mut out = vec!["starts_with(w.village_code, $1)".to_string()];
        for (column, _) in self.chosen() {
            out.push(format!("w.{column} = ${}", out.len() + 1));
        }
        out.join(" AND ")
    }

    /// The values [`Self::sql`]'s placeholders stand for.
    fn values(&self) -> Vec<&str> {
        let mut values = vec![self.place.as_str()];
        values.extend(self.chosen().map(|(_, v)| v));
        values
    }

    /// A link to `place` with these filters.
    fn link(&self, place: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("place", place);
        for (k, v) in [
            ("status", &self.status),
            ("risk_type", &self.risk_type),
            ("severity", &self.severity),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        format!("/ui/warnings?{}", q.finish())
    }
}

/// The level below `place`: the length of its children's codes.
fn child_len(place: &str) -> Option<usize> {
    LEVELS.iter().copied().find(|l| *l > place.len())
}

/// Names of counties, townships and villages, from the roster (as the
/// user may see it).
async fn place_names(
    ctx: &datafusion::prelude::SessionContext,
) -> ApiResult<BTreeMap<String, String>> {
    let mut names: BTreeMap<String, String> = PROVINCES
        .iter()
        .map(|(code, name)| (code.to_string(), name.to_string()))
        .collect();
    if !ctx.table_exist(ROSTER_HOUSEHOLD)? {
        return Ok(names);
    }
    for level in ["county", "township", "village"] {
        let batches = ctx
            .sql(&format!(
                "SELECT DISTINCT {level}_code AS code, {level}_name AS name FROM {ROSTER_HOUSEHOLD}
                 WHERE {level}_name IS NOT NULL"
            ))
            .await?
            .collect()
            .await?;
        for row in rows_of(&batches)? {
            if let (Some(code), Some(name)) = (row.get("code"), row.get("name")) {
                names.insert(code.clone(), name.clone());
            }
        }
    }
    Ok(names)
}

fn viewer(session: &Session) -> Viewer<'_> {
    Viewer {
        principal: &session.principal,
        csrf: &session.csrf,
    }
}

/// The filter form, keeping the place.
fn filter_form(lang: Lang, f: &Filters) -> Markup {
    let select = |name: &str, label: &str, values: &[&str], chosen: &Option<String>| {
        html! {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { (lang.t("全部", "All")) }
                @for v in values {
                    @if chosen.as_deref() == Some(*v) {
                        option value=(v) selected { (word(lang, v)) }
                    } @else {
                        option value=(v) { (word(lang, v)) }
                    }
                }
            }
        }
    };
    html! {
        form method="get" action="/ui/warnings" class="filters" {
            input type="hidden" name="place" value=(f.place);
            (select("status", lang.t("状态", "Status"), &statuses(), &f.status))
            (select("risk_type", lang.t("风险类型", "Risk type"), RISK_TYPES, &f.risk_type))
            (select("severity", lang.t("严重程度", "Severity"), &severities(), &f.severity))
            button type="submit" { (lang.t("筛选", "Filter")) }
        }
    }
}

/// Links up the levels from the user's scope to `place`.
fn breadcrumb(lang: Lang, f: &Filters, names: &BTreeMap<String, String>, scope: &str) -> Markup {
    let steps: Vec<&str> = LEVELS
        .iter()
        .filter(|l| **l <= f.place.len() && **l >= scope.len())
        .map(|l| &f.place[..*l])
        .collect();
    html! {
        nav class="crumbs" aria-label=(lang.t("地区层级", "Place levels")) {
            a href=(f.link(scope)) { (lang.t("全部地区", "All places")) }
            @for code in steps {
                " › "
                a href=(f.link(code)) { (names.get(code).map_or(code, String::as_str)) }
            }
        }
    }
}

/// Counts of one place.
#[derive(Default)]
struct Counts {
    total: i64,
    by_status: BTreeMap<String, i64>,
    by_risk: BTreeMap<String, i64>,
}

/// GET /ui/warnings?place=&status=&risk_type=&severity=
pub async fn places(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(lang): Extension<Lang>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let f = Filters::parse(raw.as_deref(), &session)?;
    let p = &session.principal;
    let ctx = console.app.access.session(p, None).await?;
    let names = place_names(&ctx).await?;
    let scope = p.region.clone().unwrap_or_default();
    let has_warnings = ctx.table_exist(WARNINGS)?;
    let title = match names.get(&f.place) {
        Some(n) => format!("{} · {n}", lang.t("预警", "Warnings")),
        None if f.place.is_empty() => lang.t("预警", "Warnings").to_string(),
        None => format!("{} · {}", lang.t("预警", "Warnings"), f.place),
    };
    let (table, rows) = match child_len(&f.place) {
        _ if !has_warnings => (
            html! { p { (lang.t("湖中还没有预警：先运行流水线。", "No warnings in the lake yet: run the pipeline first.")) } },
            0,
        ),
        Some(len) => place_table(&ctx, lang, &f, &names, len).await?,
        None => village_list(&ctx, lang, &f).await?,
    };
    let body = html! {
        h1 { (title) }
        (breadcrumb(lang, &f, &names, &scope))
        (filter_form(lang, &f))
        (table)
    };
    let mut response = page::respond(
        StatusCode::OK,
        page::page(lang, &title, "/ui/warnings", Some(&viewer(&session)), body),
    );
    response.extensions_mut().insert(Rows(rows));
    Ok(response)
}

/// The places one level below `f.place`, with their counts.
async fn place_table(
    ctx: &datafusion::prelude::SessionContext,
    lang: Lang,
    f: &Filters,
    names: &BTreeMap<String, String>,
    len: usize,
) -> ApiResult<(Markup, usize)> {
    let batches = bound(
        ctx,
        &format!(
            "SELECT substr(w.village_code, 1, {len}) AS place, w.status, w.risk_type,
                    CAST(count(*) AS VARCHAR) AS n
             FROM {WARNINGS} w WHERE {} GROUP BY 1, 2, 3",
            f.sql()
        ),
        &f.values(),
    )
    .await?
    .collect()
    .await?;
    let mut by_place: BTreeMap<String, Counts> = BTreeMap::new();
    for row in rows_of(&batches)? {
        let (Some(place), Some(n)) = (row.get("place"), row.get("n")) else {
            continue;
        };
        let n: i64 = n.parse().unwrap_or(0);
        let c = by_place.entry(place.clone()).or_default();
        c.total += n;
        if let Some(s) = row.get("status") {
            *c.by_status.entry(s.clone()).or_default() += n;
        }
        if let Some(r) = row.get("risk_type") {
            *c.by_risk.entry(r.clone()).or_default() += n;
        }
    }
    let all = statuses();
    let sum = |s: &str| {
        by_place
            .values()
            .filter_map(|c| c.by_status.get(s))
            .sum::<i64>()
    };
    let markup = html! {
        @if by_place.is_empty() {
            p { (lang.t("没有符合条件的预警。", "No warnings match.")) }
        } @else {
            table class="counts" {
                caption { (level_name(lang, len)) " · " (lang.t("按状态和风险类型计数", "counts by status and risk type")) }
                thead {
                    tr {
                        th scope="col" { (level_name(lang, len)) }
                        th scope="col" class="num" { (lang.t("合计", "Total")) }
                        @for s in &all { th scope="col" class="num" { (word(lang, s)) } }
                        th scope="col" { (lang.t("风险类型", "Risk types")) }
                    }
                }
                tbody {
                    @for (code, c) in &by_place {
                        tr {
                            th scope="row" {
                                a href=(f.link(code)) {
                                    (names.get(code).map_or(code.as_str(), String::as_str))
                                }
                                @if names.contains_key(code) { " " span class="code" { (code) } }
                            }
                            td class="num" { (c.total) }
                            @for s in &all { td class="num" { (c.by_status.get(*s).copied().unwrap_or(0)) } }
                            td { (risk_summary(&c.by_risk)) }
                        }
                    }
                }
                tfoot {
                    tr {
                        th scope="row" { (lang.t("合计", "Total")) }
                        td class="num" { (by_place.values().map(|c| c.total).sum::<i64>()) }
                        @for s in &all { td class="num" { (sum(s)) } }
                        td {}
                    }
                }
            }
        }
    };
    Ok((markup, by_place.len()))
}

/// `因病 12 · 因残 3`, most first.
fn risk_summary(by_risk: &BTreeMap<String, i64>) -> String {
    let mut v: Vec<(&String, &i64)> = by_risk.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// One village's warnings, open and most serious first.
async fn village_list(
    ctx: &datafusion::prelude::SessionContext,
    lang: Lang,
    f: &Filters,
) -> ApiResult<(Markup, usize)> {
    let batches = bound(
        ctx,
        &format!(
            "SELECT w.warning_id, w.household_id, w.kind, w.risk_type, w.severity,
                    CAST(round(w.score, 3) AS VARCHAR) AS score_text, w.status, CAST(w.first_seen AS VARCHAR) AS first_seen
             FROM {WARNINGS} w WHERE {}
             ORDER BY CASE w.status WHEN 'open' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, w.score DESC, w.warning_id
             LIMIT {}",
            f.sql(),
            VILLAGE_LIST + 1
        ),
        &f.values(),
    )
    .await?
    .collect()
    .await?;
    let mut rows = rows_of(&batches)?;
    let more = rows.len() > VILLAGE_LIST;
    rows.truncate(VILLAGE_LIST);
    let get = |r: &BTreeMap<String, String>, k: &str| r.get(k).cloned().unwrap_or_default();
    let markup = html! {
        @if rows.is_empty() {
            p { (lang.t("没有符合条件的预警。", "No warnings match.")) }
        } @else {
            table class="list" {
                caption { (lang.t("本村预警", "This village's warnings")) }
                thead {
                    tr {
                        th scope="col" { (lang.t("预警编号", "Warning")) }
                        th scope="col" { (lang.t("户编号", "Household")) }
                        th scope="col" { (lang.t("类型", "Kind")) }
                        th scope="col" { (lang.t("风险类型", "Risk type")) }
                        th scope="col" { (lang.t("严重程度", "Severity")) }
                        th scope="col" class="num" { (lang.t("评分", "Score")) }
                        th scope="col" { (lang.t("状态", "Status")) }
                        th scope="col" { (lang.t("首次发现", "First seen")) }
                    }
                }
                tbody {
                    @for r in &rows {
                        tr {
                            td { a href={ "/ui/warnings/" (get(r, "warning_id")) } { (get(r, "warning_id")) } }
                            td { (get(r, "household_id")) }
                            td { (word(lang, &get(r, "kind"))) }
                            td { (get(r, "risk_type")) }
                            td { (word(lang, &get(r, "severity"))) }
                            td class="num" { (get(r, "score_text")) }
                            td { span class={ "status " (get(r, "status")) } { (word(lang, &get(r, "status"))) } }
                            td { (get(r, "first_seen")) }
                        }
                    }
                }
            }
            @if more {
                p class="hint" { (lang.t("只列出前 500 条；请用筛选缩小范围。", "Only the first 500 are listed; filter to narrow down.")) }
            }
        }
    };
    Ok((markup, rows.len()))
}

/// An amount to the fen: floating-point sums print as 308.1350000000002.
fn money(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.2}"))
}

/// Columns whose values are words of the warning stage, shown translated.
const WORDS: &[&str] = &["event", "status", "severity", "effect"];

/// A JSON array of objects as a table with these columns (key, Chinese,
/// English); values shown as text.
fn json_table(lang: Lang, caption: &str, items: &Value, columns: &[(&str, &str, &str)]) -> Markup {
    let empty = Vec::new();
    let items = items.as_array().unwrap_or(&empty);
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => money(n.as_f64()),
        other => other.to_string(),
    };
    html! {
        @if !items.is_empty() {
            table class="list" {
                caption { (caption) }
                thead { tr { @for (_, zh, en) in columns { th scope="col" { (lang.t(zh, en)) } } } }
                tbody {
                    @for item in items {
                        tr { @for (key, _, _) in columns {
                            @if WORDS.contains(key) {
                                td { (word(lang, &text(&item[*key]))) }
                            } @else {
                                td { (text(&item[*key])) }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// GET /ui/warnings/{warning_id}
pub async fn one(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(lang): Extension<Lang>,
    Path(warning_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = params::query(raw.as_deref(), &["saved"])?;
    let p = &session.principal;
    let ctx = console.app.access.session(p, None).await?;
    let row = load_one(&console.app, &ctx, p, &warning_id).await?;
    let events = Value::from(events_of(&ctx, std::slice::from_ref(&warning_id)).await?);
    let names = place_names(&ctx).await?;
    let get = |k: &str| row.get(k).cloned().unwrap_or_default();
    let json = |k: &str| {
        row.get(k)
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .unwrap_or(Value::Null)
    };
    let household = get("household_id");
    let (timeline, _) =
        crate::api::households::household_timeline(&console.app, p, &household).await?;
    let village = get("village_code");
    let place = [get("county_code"), get("township_code"), village.clone()]
        .iter()
        .map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone()))
        .collect::<Vec<_>>()
        .join(" ");
    let title = format!("{} {warning_id}", lang.t("预警", "Warning"));
    let body = html! {
        nav class="crumbs" {
            a href={ "/ui/warnings?place=" (village) } { (lang.t("返回本村预警", "Back to the village")) }
        }
        h1 { (title) }
        @if q.contains_key("saved") {
            p class="saved" role="status" { (lang.t("核实结果已记录。", "The visit's result is recorded.")) }
        }
        dl class="facts" {
            dt { (lang.t("地区", "Place")) } dd { (place) " " span class="code" { (village) } }
            dt { (lang.t("户编号", "Household")) } dd { (household) }
            dt { (lang.t("类型", "Kind")) } dd { (word(lang, &get("kind"))) }
            dt { (lang.t("风险类型", "Risk type")) } dd { (get("risk_type")) }
            dt { (lang.t("严重程度", "Severity")) } dd { (word(lang, &get("severity"))) }
            dt { (lang.t("评分", "Score")) } dd { (get("score").parse::<f64>().map_or(get("score"), |v| format!("{v:.3}"))) }
            dt { (lang.t("估算人均收入（元）", "Estimated income per head (yuan)")) } dd { (money(get("estimate_per_capita").parse().ok())) }
            dt { (lang.t("状态", "Status")) } dd { span class={ "status " (get("status")) } { (word(lang, &get("status"))) } }
            @if !get("outcome").is_empty() {
                dt { (lang.t("核实结果", "Outcome")) } dd { (word(lang, &get("outcome"))) }
            }
            dt { (lang.t("首次发现", "First seen")) } dd { (get("first_seen")) }
        }
        (json_table(lang, lang.t("证据", "Evidence"), &json("evidence"), &[
            ("rule", "规则", "Rule"),
            ("source", "来源", "Source"),
            ("record_key", "记录", "Record"),
            ("event_date", "日期", "Date"),
            ("amount", "金额（元）", "Amount (yuan)"),
            ("detail", "说明", "Detail"),
        ]))
        (json_table(lang, lang.t("家庭收入测算", "The household's assessment"), &json("assessment"), &[
            ("step", "步骤", "Step"),
            ("effect", "作用", "Effect"),
            ("records", "记录数", "Records"),
            ("total", "金额（元）", "Total (yuan)"),
            ("per_capita", "人均（元）", "Per head (yuan)"),
            ("running", "累计人均（元）", "Running per head (yuan)"),
        ]))
        (json_table(lang, lang.t("处理记录", "History"), &events, &[
            ("at", "时间", "At"),
            ("event", "事件", "Event"),
            ("detail", "说明", "Detail"),
            ("actor", "操作人", "By"),
        ]))
        (json_table(lang, lang.t("家庭成员（名册）", "Members (roster)"), &timeline["members"], &[
            ("name", "姓名", "Name"),
            ("relation", "与户主关系", "Relation"),
            ("gender", "性别", "Gender"),
            ("birth_date", "出生日期", "Birth date"),
            ("id_number", "身份证号", "ID number"),
        ]))
        (json_table(lang, lang.t("本户全部预警", "All of the household's warnings"), &timeline["warnings"], &[
            ("warning_id", "预警编号", "Warning"),
            ("risk_type", "风险类型", "Risk type"),
            ("period", "期间", "Period"),
            ("status", "状态", "Status"),
            ("first_seen", "首次发现", "First seen"),
        ]))
        (json_table(lang, lang.t("家庭时间线：部门记录", "The household's timeline: department records"), &timeline["records"], &[
            ("date", "日期", "Date"),
            ("source", "来源", "Source"),
            ("record_key", "记录", "Record"),
        ]))
        @if p.can_verify() {
            (verification_form(lang, &session, &warning_id))
        }
    };
    let mut response = page::respond(
        StatusCode::OK,
        page::page(lang, &title, "/ui/warnings", Some(&viewer(&session)), body),
    );
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}

fn verification_form(lang: Lang, session: &Session, warning_id: &str) -> Markup {
    let today = crate::identity::china_today()
        .format("%Y-%m-%d")
        .to_string();
    html! {
        section class="verify" {
            h2 { (lang.t("记录入户核实结果", "Record the visit's result")) }
            form method="post" action={ "/ui/warnings/" (warning_id) "/verification" } {
                input type="hidden" name="_csrf" value=(session.csrf);
                label for="visited_on" { (lang.t("入户日期", "Visited on")) }
                input id="visited_on" name="visited_on" type="date" required max=(today) value=(today);
                label for="outcome" { (lang.t("核实结果", "Outcome")) }
                select id="outcome" name="outcome" required {
                    @for o in visit_outcomes() { option value=(o) { (word(lang, o)) } }
                }
                label for="reason" { (lang.t("理由", "Reason")) }
                textarea id="reason" name="reason" rows="3" {}
                label for="visited_by" { (lang.t("核实人", "Visited by")) }
                input id="visited_by" name="visited_by" type="text" required value=(session.principal.name);
                button type="submit" id="record-visit" { (lang.t("提交核实结果", "Record")) }
            }
        }
    }
}

/// The verification form's fields.
#[derive(Debug, Deserialize)]
pub struct VerificationForm {
    visited_on: String,
    outcome: String,
    #[serde(default)]
    reason: String,
    visited_by: String,
}

/// POST /ui/warnings/{warning_id}/verification
pub async fn verify(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(warning_id): Path<String>,
    Form(form): Form<VerificationForm>,
) -> ApiResult<Response> {
    let body = VerificationBody {
        visited_on: form.visited_on,
        outcome: form.outcome,
        reason: form.reason,
        visited_by: form.visited_by,
    };
    record_verification(
        &console.app,
        &session.principal,
        &warning_id,
        &body,
        "console user",
    )
    .await?;
    let mut response = Redirect::to(&format!("/ui/warnings/{warning_id}?saved=1")).into_response();
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}
