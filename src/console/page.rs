//! What every console page shares: the language, the frame (header,
//! navigation, the user and the logout button), the words of the warning
//! stage in Chinese and English, and error pages.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};

use crate::access::{Principal, Role};

/// The console's language: Chinese unless the user chose English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 中文.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The cookie that keeps the choice.
    pub const COOKIE: &'static str = "sn_lang";

    /// `zh` or `en`; anything else is Chinese.
    pub fn parse(text: &str) -> Lang {
        if text.trim() == "en" {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn html_code(self) -> &'static str {
        self.t("zh-CN", "en")
    }

    fn code(self) -> &'static str {
        self.t("zh", "en")
    }

    fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// How the words the lake keeps (statuses, outcomes, severities, kinds,
/// events) read to a clerk. Unknown words are shown as they are.
pub fn word(lang: Lang, text: &str) -> String {
    let zh = match text {
        "open" => "待核实",
        "queued" => "排队中",
        "verified" => "已核实",
        "closed" => "已关闭",
        "included" => "纳入监测",
        "not_included" => "不纳入",
        "risk_eliminated" => "风险消除",
        "high" => "高",
        "medium" => "中",
        "low" => "低",
        "early_warning" => "收入跌破监测线",
        "roster_below_line" => "名册收入低于监测线",
        "clue" => "线索",
        "raised" => "产生",
        "released" => "放出",
        "updated" => "证据更新",
        "reopened" => "重新打开",
        "match" => "是同一人",
        "no_match" => "不是同一人",
        "undone" => "已撤销",
        "add" => "加",
        "ok" => "成功",
        "failed" => "失败",
        "subtract" => "减",
        _ => return text.to_string(),
    };
    match lang {
        Lang::Zh => zh.to_string(),
        Lang::En => text.replace('_', " "),
    }
}

/// One navigation entry: path, Chinese and English label, and whether only
/// the roles that decide links see it.
const NAV: &[(&str, &str, &str, bool)] = &[
    ("/ui/warnings", "预警", "Warnings", false),
    ("/ui/review", "人工复核", "Review", true),
    ("/ui/linkage", "匹配质量", "Linkage", false),
    ("/ui/runs", "运行记录", "Runs", false),
];

/// Who is looking, for the frame.
pub struct Viewer<'a> {
    /// The logged-in user.
    pub principal: &'a Principal,
    /// The session's CSRF token, for forms.
    pub csrf: &'a str,
}

/// A whole page: `title`, the navigation with `path`'s entry marked, the
/// user with a logout button, and `body`.
pub fn page(lang: Lang, title: &str, path: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    let switch = lang.other();
    let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    html! {
        (DOCTYPE)
        html lang=(lang.html_code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("防返贫监测 safetynet", "safetynet")) }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/ui/warnings" { (lang.t("防返贫监测", "Return-to-poverty monitoring")) }
                    @if let Some(v) = viewer {
                        nav aria-label=(lang.t("主菜单", "Main")) {
                            @for (href, zh, en, reviewers) in NAV {
                                @if *reviewers && !matches!(v.principal.role, Role::Admin | Role::Analyst) {
                                } @else if path.starts_with(href) {
                                    a href=(href) aria-current="page" { (lang.t(zh, en)) }
                                } @else {
                                    a href=(href) { (lang.t(zh, en)) }
                                }
                            }
                        }
                        span class="who" {
                            (v.principal.name) " · " (role_label(lang, v.principal))
                        }
                        form method="post" action="/ui/logout" class="inline" {
                            input type="hidden" name="_csrf" value=(v.csrf);
                            button type="submit" { (lang.t("退出", "Log out")) }
                        }
                    }
                    a class="lang" href={ "/ui/lang/" (switch.code()) "?back=" (back) } lang=(switch.html_code()) {
                        (switch.t("中文", "English"))
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

fn role_label(lang: Lang, p: &Principal) -> String {
    let role = match (lang, p.role.name()) {
        (Lang::Zh, "admin") => "管理员",
        (Lang::Zh, "analyst") => "分析员",
        (Lang::Zh, "verifier") => "核实员",
        (Lang::Zh, "reader") => "查看",
        (_, other) => other,
    };
    match &p.region {
        Some(r) => format!("{role} {r}"),
        None => role.to_string(),
    }
}

/// A table of `rows` with these columns (key, Chinese, English, numeric).
pub fn table(
    lang: Lang,
    caption: &str,
    rows: &[BTreeMap<String, String>],
    columns: &[(&str, &str, &str, bool)],
) -> Markup {
    html! {
        table class="list" {
            caption { (caption) }
            thead { tr { @for (_, zh, en, num) in columns {
                th scope="col" class=[num.then_some("num")] { (lang.t(zh, en)) }
            } } }
            tbody {
                @for r in rows {
                    tr { @for (key, _, _, num) in columns {
                        @let v = r.get(*key).cloned().unwrap_or_default();
                        @if *key == "status" {
                            td { span class={ "status " (v) } { (word(lang, &v)) } }
                        } @else {
                            td class=[num.then_some("num")] { (v) }
                        }
                    } }
                }
            }
        }
    }
}

/// The rows of `sql` in the caller's session, every value as text.
pub async fn query_rows(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> crate::api::error::ApiResult<Vec<BTreeMap<String, String>>> {
    query_rows_bound(ctx, sql, &[]).await
}

/// As [`query_rows`], with `$1`, `$2`, … in `sql` bound to `values`.
pub async fn query_rows_bound(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    values: &[&str],
) -> crate::api::error::ApiResult<Vec<BTreeMap<String, String>>> {
    let batches = crate::lake::query::bound(ctx, sql, values)
        .await?
        .collect()
        .await?;
    Ok(crate::lake::query::rows_of(&batches)?)
}

/// A page as a response that is never cached (it holds personal data).
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page: what went wrong, in the user's language where the
/// message is ours, and a way back.
pub fn error(lang: Lang, status: StatusCode, message: &str, viewer: Option<&Viewer>) -> Response {
    let heading = match status.as_u16() {
        400 => lang.t("请求有误", "Bad request"),
        401 => lang.t("请先登录", "Please log in"),
        403 => lang.t("无权查看", "Not allowed"),
        404 => lang.t("找不到", "Not found"),
        429 => lang.t("尝试过多", "Too many attempts"),
        503 => lang.t("服务繁忙", "Service busy"),
        _ => lang.t("出错了", "Something went wrong"),
    };
    let body = html! {
        h1 { (heading) }
        p class="error" role="alert" { (message) }
        p { a href="/ui/warnings" { (lang.t("返回预警", "Back to warnings")) } }
    };
    let mut response = respond(status, page(lang, heading, "", viewer, body));
    response
        .extensions_mut()
        .insert(crate::api::error::ErrorText(message.to_string()));
    response
}
