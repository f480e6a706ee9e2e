//! Linkage quality in the console (匹配质量): per source, how many records
//! were linked, sent to review or left unlinked, with the model's own
//! estimate of precision and of the matches it left unlinked; the
//! match-weight histogram with the link and review thresholds marked; m
//! and u per comparison level of the model in use; and the source's last
//! link runs from `link_history`, for trends.
//!
//! The estimates are the model's: the mean match probability of the linked
//! records is the precision the model expects, right only as far as its
//! probabilities are calibrated. `safetynet eval` measures against truth.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::Console;
use super::page::{self, Lang, Viewer, query_rows as rows};
use super::session::Session;
use crate::api::auth::Rows;
use crate::api::error::ApiResult;
use crate::api::params;
use crate::lake::tables::{LINK_HISTORY, LINK_MODEL, SourceName, link_table};
use crate::link::settings::SettingsFile;

/// A probability as a match weight (log2 of the odds), as the linker
/// scores pairs.
fn weight_of(probability: f64) -> f64 {
    let p = probability.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).log2()
}

/// Counts of match weights in bins one weight wide, as SVG bars, with the
/// thresholds as labelled lines.
fn histogram(lang: Lang, bins: &[(i64, i64)], thresholds: &[(String, f64)]) -> Markup {
    let Some(lo) = bins.iter().map(|b| b.0).min() else {
        return html! {};
    };
    let hi = bins.iter().map(|b| b.0).max().unwrap_or(lo) + 1;
    let lo = thresholds
        .iter()
        .map(|t| t.1.floor() as i64)
        .fold(lo, i64::min);
    let hi = thresholds
        .iter()
        .map(|t| t.1.ceil() as i64)
        .fold(hi, i64::max);
    let most = bins.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let (left, width, height, bottom) = (40.0, 600.0, 160.0, 20.0);
    let span = (hi - lo).max(1) as f64;
    let x = |w: f64| left + (w - lo as f64) / span * width;
    let bar = width / span;
    html! {
        svg class="histogram" role="img" viewBox={ "0 0 " (left + width + 10.0) " " (height + bottom + 24.0) }
            aria-label=(lang.t("匹配权重分布", "Distribution of match weights")) {
            line x1=(left) x2=(left + width) y1=(height + 14.0) y2=(height + 14.0) class="axis" {}
            @for (bin, n) in bins {
                @let h = *n as f64 / most * height;
                rect x=(x(*bin as f64) + 1.0) y=(height + 14.0 - h) width=((bar - 2.0).max(1.0)) height=(h) class="bin" {
                    title { (bin) "–" (bin + 1) ": " (n) }
                }
            }
            @for w in (lo..=hi).step_by(((hi - lo) / 10).max(1) as usize) {
                text x=(x(w as f64)) y=(height + 30.0) class="tick" { (w) }
            }
            @for (i, (label, w)) in thresholds.iter().enumerate() {
                line x1=(x(*w)) x2=(x(*w)) y1="10" y2=(height + 14.0) class="threshold" {}
                text x=(x(*w) + 3.0) y=(10.0 + 12.0 * i as f64) class="threshold" { (label) }
            }
            text x=(left + width / 2.0) y=(height + bottom + 22.0) class="tick" { (lang.t("匹配权重", "match weight")) }
        }
    }
}

/// GET /ui/linkage[?source=…]
pub async fn quality(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(lang): Extension<Lang>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = params::query(raw.as_deref(), &["source"])?;
    let p = &session.principal;
    let ctx = console.app.access.session(p, None).await?;
    let sources = super::review::linked_sources(&ctx);
    let mut summary = Vec::new();
    for source in &sources {
        let q = crate::link::history::measure(&ctx, source).await?;
        let row: BTreeMap<String, String> = [
            ("source", source.to_string()),
            ("linked", q.linked.to_string()),
            ("review", q.review.to_string()),
            ("unlinked", q.unlinked.to_string()),
            (
                "expected_precision",
                q.expected_precision
                    .map_or("-".into(), |p| format!("{:.2}", 100.0 * p)),
            ),
            ("expected_false", format!("{:.1}", q.expected_wrong_links)),
            ("expected_missed", format!("{:.1}", q.expected_not_linked)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        summary.push(row);
    }
    let chosen = match q.get("source").filter(|s| !s.is_empty()) {
        Some(s) if sources.iter().any(|known| known == s) => SourceName::new(s).ok(),
        Some(s) => {
            return Err(crate::api::error::ApiError::not_found(format!(
                "source '{}' has not been linked",
                s.chars().take(40).collect::<String>()
            )));
        }
        None => sources.first().cloned(),
    };
    let mut detail = html! {};
    if let Some(source) = &chosen {
        let bins: Vec<(i64, i64)> = rows(
            &ctx,
            &format!(
                "SELECT CAST(CAST(floor(match_weight) AS BIGINT) AS VARCHAR) AS bin, CAST(count(*) AS VARCHAR) AS n
                 FROM {} WHERE match_weight IS NOT NULL GROUP BY 1",
                link_table(source)
            ),
        )
        .await?
        .iter()
        .filter_map(|r| Some((r.get("bin")?.parse().ok()?, r.get("n")?.parse().ok()?)))
        .collect();
        let thresholds = match &console.review {
            Some(setup) => {
                let settings = SettingsFile::load(&setup.linkage)?.for_source(source)?;
                vec![
                    (
                        format!("{} {}", lang.t("关联", "link"), settings.link_threshold),
                        weight_of(settings.link_threshold),
                    ),
                    (
                        format!("{} {}", lang.t("复核", "review"), settings.review_threshold),
                        weight_of(settings.review_threshold),
                    ),
                ]
            }
            None => Vec::new(),
        };
        let model = if ctx.table_exist(LINK_MODEL)? {
            page::query_rows_bound(
                &ctx,
                &format!(
                    "SELECT comparison, CAST(level AS VARCHAR) AS level, label,
                            CAST(round(m_probability, 4) AS VARCHAR) AS m,
                            CAST(round(u_probability, 6) AS VARCHAR) AS u,
                            CAST(round(log2(m_probability / u_probability), 2) AS VARCHAR) AS weight,
                            CAST(version AS VARCHAR) AS version
                     FROM {LINK_MODEL}
                     WHERE source = $1 AND version = (SELECT max(version) FROM {LINK_MODEL} WHERE source = $1)
                     ORDER BY comparison, level"
                ),
                &[source],
            )
            .await?
        } else {
            Vec::new()
        };
        detail = html! {
            h2 { (source) }
            nav class="crumbs" {
                @for s in &sources {
                    @if s == source { strong { (s) } } @else { a href={ "/ui/linkage?source=" (s) } { (s) } }
                    " "
                }
            }
            figure {
                (histogram(lang, &bins, &thresholds))
                figcaption { (lang.t(
                    "每条记录最佳候选人的匹配权重（概率的对数几率）；竖线为关联和复核阈值。",
                    "Each record's best candidate by match weight (log2 odds of the probability); the lines are the link and review thresholds.",
                )) }
            }
            @if !model.is_empty() {
                (page::table(lang, &format!("{} v{}", lang.t("模型参数：每个比较级别的 m 和 u", "The model: m and u per comparison level"), model[0].get("version").map_or("", String::as_str)), &model, &[
                    ("comparison", "比较项", "Comparison", false),
                    ("label", "级别", "Level", false),
                    ("m", "m（同一人时的概率）", "m (if the same person)", true),
                    ("u", "u（不同人时的概率）", "u (if different people)", true),
                    ("weight", "权重 log2(m/u)", "Weight log2(m/u)", true),
                ]))
            }
        };
    }
    let trend = match &chosen {
        Some(source) if ctx.table_exist(LINK_HISTORY)? => {
            page::query_rows_bound(
                &ctx,
                &format!(
                    "SELECT CAST(date_trunc('second', linked_at) AS VARCHAR) AS at,
                            'v' || CAST(model_version AS VARCHAR) || CASE WHEN trained THEN ' *' ELSE '' END AS model,
                            CAST(records AS VARCHAR) AS records, CAST(linked AS VARCHAR) AS linked,
                            CAST(review AS VARCHAR) AS review, CAST(unlinked AS VARCHAR) AS unlinked,
                            CAST(round(100.0 * expected_precision, 2) AS VARCHAR) AS expected_precision,
                            CAST(round(expected_wrong_links, 1) AS VARCHAR) AS expected_false,
                            CAST(round(seconds, 1) AS VARCHAR) AS seconds
                     FROM {LINK_HISTORY} WHERE source = $1
                     ORDER BY linked_at DESC LIMIT 20"
                ),
                &[source],
            )
            .await?
        }
        _ => Vec::new(),
    };
    let title = lang.t("匹配质量", "Linkage quality");
    let body = html! {
        h1 { (title) }
        @if summary.is_empty() {
            p { (lang.t("还没有关联结果：先运行流水线。", "Nothing linked yet: run the pipeline first.")) }
        } @else {
            (page::table(lang, lang.t("各来源关联结果", "Links by source"), &summary, &[
                ("source", "来源", "Source", false),
                ("linked", "已关联", "Linked", true),
                ("review", "待复核", "Review", true),
                ("unlinked", "未关联", "Unlinked", true),
                ("expected_precision", "模型估计的准确率 %", "Precision the model expects, %", true),
                ("expected_false", "模型估计的错误关联", "Wrong links the model expects", true),
                ("expected_missed", "模型估计漏掉的匹配", "Matches the model expects it left out", true),
            ]))
            p class="hint" { (lang.t(
                "估计值来自模型自己的匹配概率（准确率：已关联记录的平均概率；错误关联：已关联记录 1 − 概率之和；漏掉的匹配：其余记录最佳候选人的概率之和），只在概率校准良好时可信；用 safetynet eval 对照真值测量。",
                "The estimates are the model's own probabilities (precision: the mean over linked records; wrong links: the sum of 1 − probability over them; matches left out: the sum over the other records' best candidates), as good as their calibration; safetynet eval measures against truth.",
            )) }
            (detail)
        }
        @if !trend.is_empty() {
            (page::table(lang, &format!("{} · {}", chosen.as_deref().unwrap_or_default(), lang.t("最近 20 次关联（* 为重新训练的模型）", "the last 20 link runs (* a newly trained model)")), &trend, &[
                ("at", "时间 (UTC)", "At (UTC)", false),
                ("model", "模型", "Model", false),
                ("records", "记录数", "Records", true),
                ("linked", "已关联", "Linked", true),
                ("review", "待复核", "Review", true),
                ("unlinked", "未关联", "Unlinked", true),
                ("expected_precision", "模型估计的准确率 %", "Expected precision %", true),
                ("expected_false", "模型估计的错误关联", "Expected wrong links", true),
                ("seconds", "用时（秒）", "Seconds", true),
            ]))
        }
    };
    let viewer = Viewer {
        principal: p,
        csrf: &session.csrf,
    };
    let n = summary.len() + trend.len();
    let mut response = page::respond(
        StatusCode::OK,
        page::page(lang, title, "/ui/linkage", Some(&viewer), body),
    );
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_become_weights_as_the_linker_scores() {
        assert!((weight_of(0.5)).abs() < 1e-9);
        assert!((weight_of(0.99) - 6.6294).abs() < 1e-3);
        assert!(weight_of(1.0).is_finite());
    }

    #[test]
    fn the_histogram_marks_each_threshold() {
        let svg = histogram(
            Lang::En,
            &[(-3, 10), (0, 4), (7, 20)],
            &[("link 0.99".into(), 6.63), ("review 0.5".into(), 0.0)],
        )
        .into_string();
        assert_eq!(svg.matches("class=\"bin\"").count(), 3);
        assert!(svg.contains("link 0.99") && svg.contains("review 0.5"));
        assert!(histogram(Lang::En, &[], &[]).into_string().is_empty());
    }
}
