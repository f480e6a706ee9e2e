//! Printing the report structs the library returns: tables for people at
//! a terminal, with Chinese and English headers.

use crate::ingest::FileOutcome;
use crate::link::LinkReport;
use crate::link::eval::Evaluation;
use crate::link::explain::Explanation;
use crate::pipeline::{Overview, RunReport, TopWarning};
use crate::warn::WarnReport;

use super::output;

/// Everything a run did, in the order it happened.
pub fn print_run(report: &RunReport, overview: Option<&Overview>, top: &[TopWarning]) {
    print_ingest_summary(&report.ingest);
    if !report.links.is_empty() {
        print_link_reports(&report.links);
    }
    if let Some(overview) = overview {
        print_overview(overview);
    }
    if let Some(w) = &report.warn {
        print_warn_report(w);
    }
    print_top_warnings(top);
    if let Some(d) = &report.delivery {
        print_delivery_report(d);
    }
}

/// Rows per table and the most common quarantine reasons.
pub fn print_overview(o: &Overview) {
    let mut t = output::table(vec!["table 表", "rows 行数"]);
    for (name, n) in &o.tables {
        t.add_row(vec![name.clone(), n.to_string()]);
    }
    println!("lake 数据湖: {}\n{t}", o.lake);
    if !o.quarantine_reasons.is_empty() {
        let mut reasons = output::table(vec!["table 表", "reason 隔离原因", "rows 行数"]);
        for (table, text, n) in &o.quarantine_reasons {
            let mut text = text.clone();
            if text.chars().count() > 90 {
                text = text.chars().take(90).collect::<String>() + "…";
            }
            reasons.add_row(vec![table.clone(), text, n.to_string()]);
        }
        println!("{reasons}");
    }
}

/// The highest-scoring open warnings with their evidence.
pub fn print_top_warnings(top: &[TopWarning]) {
    if top.is_empty() {
        return;
    }
    let mut t = output::table(vec![
        "warning 预警",
        "household 户",
        "village 村",
        "risk 风险",
        "severity 等级",
        "score 分值",
        "evidence 依据",
    ]);
    for w in top {
        let mut text = w
            .evidence
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
        let more = w.evidence.len().saturating_sub(4);
        if more > 0 {
            text.push_str(&format!("\n… and {more} more"));
        }
        t.add_row(vec![
            w.warning_id.clone(),
            w.household_id.clone(),
            w.village_code.clone(),
            w.risk_type.clone(),
            w.severity.clone(),
            w.score.clone(),
            text,
        ]);
    }
    println!("top warnings 重点预警\n{t}");
}

/// Precision, recall and F1 beside the exact-ID join.
pub fn print_evaluation(e: &Evaluation) {
    let mut t = output::table(vec![
        "method 方法",
        "links 关联",
        "correct 正确",
        "precision 精确率",
        "recall 召回率",
        "F1",
    ]);
    // Against another source's records there is no ID number to join on.
    let mut methods = vec![("safetynet", &e.linker)];
    if !e.truth_is_registry_keys {
        methods.push(("exact ID join 身份证号精确匹配", &e.exact_id_baseline));
    }
    for (name, s) in methods {
        t.add_row(vec![
            name.to_string(),
            s.links.to_string(),
            s.correct.to_string(),
            format!("{:.4}", s.precision),
            format!("{:.4}", s.recall),
            format!("{:.4}", s.f1),
        ]);
    }
    let q = &e.model_estimate;
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |p| format!("{p:.4}"));
    t.add_row(vec![
        "model's own estimate, no truth 模型自估".to_string(),
        q.linked.to_string(),
        format!("{:.1}", q.expected_right_links()),
        percent(q.expected_precision),
        percent(q.expected_recall()),
        "-".to_string(),
    ]);
    println!(
        "{} records, {} true matches, {} in review",
        e.records, e.linker.true_matches, e.review
    );
    println!("{t}");
    if e.truth_is_registry_keys {
        return;
    }
    println!(
        "true matches known only by name and region (no ID, no birth date): {:.2}%",
        e.name_and_region_only_share * 100.0
    );
    if let Some(b) = &e.link_all_bound {
        println!(
            "bounds set by them 仅凭姓名和地区的记录所限上界: F1 {:.4} leaving them all unlinked, F1 {:.4} linking them all ({} namesakes not on the roster would be linked)",
            e.link_none_bound.f1,
            b.f1,
            b.links - b.correct
        );
    }
    if let Some(u) = &e.link_unique_bound {
        println!(
            "  linking only those whose name and county belong to one roster person 仅关联姓名和地区唯一对应的记录: F1 {:.4}",
            u.f1
        );
    }
    if let Some(b) = &e.link_best_bound {
        println!(
            "  the best any linker deciding them by name, place and gender can do 仅凭姓名、地区和性别可达的最优: F1 {:.4}",
            b.f1
        );
    }
    let w = &e.without_id;
    let estimate = |v: Option<f64>| v.map_or("-".to_string(), |p| format!("{p:.4}"));
    println!(
        "records without an ID number 无身份证号记录: {} links, measured precision {:.4} (estimated {}), recall {:.4} (estimated {})",
        w.scores.links,
        w.scores.precision,
        estimate(w.calibrated_precision),
        w.scores.recall,
        estimate(w.calibrated_recall),
    );
    if !e.recall_by_dirt.is_empty() {
        let mut d = output::table(vec!["dirt 脏数据类型", "records 记录", "recall 召回率"]);
        for (kind, n, recall) in &e.recall_by_dirt {
            d.add_row(vec![kind.clone(), n.to_string(), format!("{recall:.4}")]);
        }
        println!("{d}");
    }
}

pub fn print_warn_report(r: &WarnReport) {
    let mut t = output::table(vec![
        "rule 规则",
        "title 名称",
        "risk 风险类型",
        "records 记录",
        "households 户",
        "pending review 待复核",
    ]);
    for s in &r.rules {
        t.add_row(vec![
            s.rule.clone(),
            s.title.clone(),
            s.risk_type.clone(),
            s.note.clone().unwrap_or_else(|| s.records.to_string()),
            s.households.to_string(),
            s.pending_review.to_string(),
        ]);
    }
    println!(
        "warnings as of 预警基准日 {} · mode 模式 {}\n{t}",
        r.as_of, r.mode
    );
    println!(
        "raised 新增 {} · updated 更新 {} · reopened 重新打开 {} · queued 排队 {} · released 转为任务 {} · unchanged 未变 {} · suppressed (already monitored) 已在监测中 {}",
        r.raised, r.updated, r.reopened, r.queued, r.released, r.unchanged, r.suppressed
    );
    if r.mode == "assessment" {
        let kinds: Vec<String> = r
            .open_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let queued: i64 = r.queued_by_county.iter().map(|(_, n)| n).sum();
        println!(
            "households assessed 研判户数 {} · open tasks by kind 待核实任务 {} · waiting for capacity 排队中 {queued}",
            r.assessed,
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(" · ")
            }
        );
    }
    if !r.open_by_county.is_empty() {
        let mut by_county: std::collections::BTreeMap<&str, (i64, Vec<String>)> =
            Default::default();
        for (county, risk, n) in &r.open_by_county {
            let entry = by_county.entry(county.as_str()).or_default();
            entry.0 += n;
            entry.1.push(format!("{risk} {n}"));
        }
        let mut c = output::table(vec![
            "county 县",
            "open warnings 待处理预警",
            "by risk 按风险类型",
        ]);
        for (county, (total, risks)) in by_county {
            c.add_row(vec![
                county.to_string(),
                total.to_string(),
                risks.join(" · "),
            ]);
        }
        println!("{c}");
    }
}

pub fn print_link_reports(reports: &[LinkReport]) {
    let mut t = output::table(vec![
        "source 来源",
        "records 记录",
        "pairs 候选对",
        "linked 关联",
        "review 待核",
        "unlinked 未关联",
        "expected precision 模型估计准确率",
        "expected recall 模型估计召回率",
        "model 模型",
        "seconds 秒",
    ]);
    for r in reports {
        t.add_row(vec![
            r.source.to_string(),
            r.records.to_string(),
            r.candidate_pairs.to_string(),
            r.quality.linked.to_string(),
            r.quality.review.to_string(),
            r.quality.unlinked.to_string(),
            r.quality
                .expected_precision
                .map_or("-".to_string(), |p| format!("{:.2}%", 100.0 * p)),
            r.quality
                .expected_recall()
                .map_or("-".to_string(), |p| format!("{:.2}%", 100.0 * p)),
            format!(
                "v{}{}",
                r.model_version,
                if r.trained { " (trained)" } else { "" }
            ),
            format!("{:.2}", r.seconds),
        ]);
    }
    println!("{t}");
    for r in reports.iter().filter(|r| r.over_budget > 0) {
        println!(
            "{}: {} records past the review budget were left unlinked, the least probable first; \
             raise review_budget to have clerks see them ({} 条超出待核上限的记录未关联，按概率从低到高)",
            r.source, r.over_budget, r.over_budget
        );
    }
    let calibrated: Vec<_> = reports
        .iter()
        .filter_map(|r| r.calibration.as_ref().map(|c| (&r.source, c)))
        .collect();
    if calibrated.is_empty() {
        return;
    }
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |p| format!("{:.2}%", 100.0 * p));
    let mut c = output::table(vec![
        "source 来源",
        "records with a valid ID, ID hidden 隐去身份证号的记录",
        "of them on the registry 在名册中",
        "linked 关联",
        "precision without ID 无证号关联准确率",
        "recall without ID 无证号关联召回率",
        "review 待核",
    ]);
    for (source, k) in calibrated {
        c.add_row(vec![
            source.to_string(),
            k.labelled.to_string(),
            k.on_registry.to_string(),
            k.linked.to_string(),
            percent(k.precision()),
            percent(k.recall()),
            k.review.to_string(),
        ]);
    }
    println!(
        "How links made without an ID number fare, from records whose ID was hidden and then checked (see link_calibration):\n{c}"
    );
    for r in reports {
        if let Some(warning) = r.calibration.as_ref().and_then(|c| c.assumption_warning()) {
            println!("{}: {warning}", r.source);
        }
    }
}

pub fn print_explanation(e: &Explanation) {
    let value = |m: &std::collections::BTreeMap<String, String>, k: &str| {
        m.get(k).cloned().unwrap_or_default()
    };
    println!(
        "{} {}: name {} · ID {} · born {} · {} · region {}",
        e.source,
        e.record_key,
        value(&e.record, "name"),
        value(&e.record, "id_number"),
        value(&e.record, "birth_date"),
        value(&e.record, "gender"),
        value(&e.record, "region_code"),
    );
    match (&e.status, &e.linked_person) {
        (Some(s), Some(p)) => println!("status 状态: {s} → {p} (model v{})", e.model_version),
        (Some(s), None) => println!("status 状态: {s} (model v{})", e.model_version),
        _ => println!("not linked yet (model v{})", e.model_version),
    }
    if e.candidates.is_empty() {
        println!("no candidates: no blocking rule pairs this record with anyone on the roster");
    }
    for (i, c) in e.candidates.iter().enumerate() {
        println!(
            "\ncandidate {} 候选: {} (household {}) — {} · {} · {} · {} · {}",
            i + 1,
            c.person_id,
            c.household_id,
            value(&c.values, "name"),
            value(&c.values, "id_number"),
            value(&c.values, "birth_date"),
            value(&c.values, "gender"),
            value(&c.values, "region_code"),
        );
        let mut t = output::table(vec![
            "step 步骤",
            "level 比对结果",
            "weight 权重",
            "total 累计",
        ]);
        for s in &c.waterfall {
            t.add_row(vec![
                s.comparison.clone(),
                s.level.clone(),
                format!("{:+.2}", s.weight),
                format!("{:.2}", s.cumulative),
            ]);
        }
        t.add_row(vec![
            "match probability 匹配概率".to_string(),
            c.review_decision
                .clone()
                .map(|d| format!("clerk: {d}"))
                .unwrap_or_default(),
            String::new(),
            format!("{:.6}", c.match_probability),
        ]);
        println!("{t}");
    }
}

pub fn print_delivery_report(r: &crate::deliver::DeliveryReport) {
    println!(
        "delivery 推送: {} delivered, {} to retry, {} rejected, {} dead-lettered, {} waiting",
        r.delivered, r.retried, r.rejected, r.dead, r.waiting
    );
    for e in r.errors.iter().take(5) {
        println!("  {e}");
    }
}

pub fn print_ingest_summary(outcomes: &[FileOutcome]) {
    let mut t = output::table(vec![
        "file 文件",
        "read 读取",
        "staged 入库",
        "quarantined 隔离",
        "seconds 秒",
        "outcome 结果",
    ]);
    for o in outcomes {
        match &o.result {
            Ok(r) => t.add_row(vec![
                r.file.clone(),
                r.rows_read.to_string(),
                r.rows_staged.to_string(),
                r.rows_quarantined.to_string(),
                format!("{:.2}", r.seconds),
                r.outcome.clone(),
            ]),
            Err(e) => t.add_row(vec![
                o.file.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("refused 拒绝: {e:#}"),
            ]),
        };
    }
    println!("{t}");
    for o in outcomes {
        if let Ok(r) = &o.result
            && !r.missing_fields.is_empty()
        {
            println!(
                "{}: 文件中没有这些字段的列，本批次为空 (no column in the file, empty in this batch): {}",
                r.file,
                r.missing_fields.join(", ")
            );
        }
    }
    for o in outcomes {
        if let Err(e) = &o.result {
            eprintln!("error: {e:#}");
        }
    }
}

/// Warnings against the truth: both modes side by side.
pub fn print_warning_evaluation(e: &crate::warn::eval::WarningEvaluation) {
    println!(
        "{} households · newly at risk 新增风险 {} ({} with a department record; {:.1}% of those findable from the records) · already below 原已低于标准 {} · as of {}",
        e.households,
        e.newly_at_risk,
        e.newly_at_risk_with_records,
        e.recall_bound * 100.0,
        e.already_below,
        e.as_of
    );
    let mut t = output::table(vec![
        "mode 模式",
        "households warned 预警户",
        "tasks 任务",
        "precision 精确率",
        "recall 召回率",
        "recall bound 上限",
        "share warned 预警户占比",
        "visits /100 households /month 每百户每月核实",
    ]);
    for m in &e.modes {
        t.add_row(vec![
            m.name.clone(),
            m.households_warned.to_string(),
            m.tasks.to_string(),
            format!("{:.3}", m.precision),
            format!("{:.3}", m.recall),
            format!("{:.3}", e.recall_bound),
            format!("{:.1}%", m.share_warned * 100.0),
            format!("{:.2}", m.visits_per_100_per_month),
        ]);
    }
    println!("{t}");
    println!(
        "precision and recall are of warnings that predict a new risk; roster-below-line warnings 名册收入低于标准 ({}) are scored apart: {} truly below before the year, {} newly at risk",
        e.roster_below_line.warnings,
        e.roster_below_line.truly_below,
        e.roster_below_line.newly_at_risk
    );
    for m in &e.modes {
        let mut t = output::table(vec!["cause 真实致险原因", "households 户", "recall 召回率"]);
        for (cause, n, recall) in &m.by_cause {
            t.add_row(vec![cause.clone(), n.to_string(), format!("{recall:.3}")]);
        }
        let mut r = output::table(vec![
            "risk type 预警风险类型",
            "tasks 任务",
            "precision 精确率",
        ]);
        for (risk, n, precision) in &m.by_risk_type {
            r.add_row(vec![risk.clone(), n.to_string(), format!("{precision:.3}")]);
        }
        println!("{}:\n{t}\n{r}", m.name);
    }
}
