//! Warning state, as pure functions: combining signals into one warning per
//! household × risk type × period, and deciding what a new run changes.
//!
//! - a new household × risk × period is **raised** (status `open`);
//! - an `open` or `pushed` warning whose evidence changed is **updated**
//!   (status back to `open`, so the new content is delivered);
//! - a `verified` or `closed` warning stays as it is unless new evidence
//!   arrives — a record not seen before, or a higher amount on a record —
//!   and then it is **reopened** and lists what is new;
//! - otherwise nothing changes, so a re-run with no new data writes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rules::severity_rank;

/// One triggering record of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub rule: String,
    pub source: String,
    pub record_key: String,
    pub person_id: Option<String>,
    pub event_date: Option<String>,
    pub amount: Option<f64>,
    pub detail: String,
    pub severity: String,
}

impl Evidence {
    fn identity(&self) -> (&str, &str, &str) {
        (&self.rule, &self.source, &self.record_key)
    }
}

/// A warning as stored in the `warnings` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub warning_id: String,
    pub household_id: String,
    pub risk_type: String,
    pub period: String,
    pub severity: String,
    pub score: f64,
    pub rules: String,
    pub records: i64,
    pub evidence: Vec<Evidence>,
    pub evidence_hash: String,
    pub new_evidence: Vec<Evidence>,
    pub status: String,
    pub outcome: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

/// A change of state, recorded in `warning_events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: String,
    pub warning_id: String,
    pub event: String,
    pub evidence_hash: String,
    pub detail: String,
}

pub fn warning_id(household_id: &str, risk_type: &str, period: &str) -> String {
    let digest = Sha256::digest(format!("{household_id}|{risk_type}|{period}").as_bytes());
    format!("W{}", &hex::encode(digest)[..16])
}

pub fn event_id(warning_id: &str, event: &str, evidence_hash: &str) -> String {
    let digest = Sha256::digest(format!("{warning_id}|{event}|{evidence_hash}").as_bytes());
    format!("E{}", &hex::encode(digest)[..16])
}

fn hash_evidence(evidence: &[Evidence]) -> String {
    let text = serde_json::to_string(evidence).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// Group signals into warnings (not yet merged with stored state).
pub fn combine(signals: Vec<(String, String, String, Evidence)>, as_of: &str) -> Vec<Warning> {
    let mut groups: BTreeMap<(String, String, String), Vec<Evidence>> = BTreeMap::new();
    for (household, risk, period, evidence) in signals {
        groups
            .entry((household, risk, period))
            .or_default()
            .push(evidence);
    }
    groups
        .into_iter()
        .map(|((household_id, risk_type, period), mut evidence)| {
            evidence.sort_by(|a, b| {
                (a.event_date.as_deref(), a.identity())
                    .cmp(&(b.event_date.as_deref(), b.identity()))
            });
            evidence.dedup_by(|a, b| a.identity() == b.identity());
            let severity = evidence
                .iter()
                .map(|e| e.severity.as_str())
                .max_by_key(|s| severity_rank(s))
                .unwrap_or("low")
                .to_string();
            let mut rules: Vec<&str> = evidence.iter().map(|e| e.rule.as_str()).collect();
            rules.sort();
            rules.dedup();
            // Each distinct rule adds its severity; more records add a little.
            let mut by_rule: BTreeMap<&str, u8> = BTreeMap::new();
            for e in &evidence {
                let rank = by_rule.entry(e.rule.as_str()).or_default();
                *rank = (*rank).max(severity_rank(&e.severity));
            }
            let score =
                by_rule.values().map(|r| f64::from(*r)).sum::<f64>() + 0.1 * evidence.len() as f64;
            let last_seen = evidence
                .iter()
                .filter_map(|e| e.event_date.clone())
                .max()
                .unwrap_or_else(|| as_of.to_string());
            Warning {
                warning_id: warning_id(&household_id, &risk_type, &period),
                household_id,
                risk_type,
                period,
                severity,
                score: (score * 10.0).round() / 10.0,
                rules: rules.join(","),
                records: evidence.len() as i64,
                evidence_hash: hash_evidence(&evidence),
                evidence,
                new_evidence: Vec::new(),
                status: "open".into(),
                outcome: None,
                first_seen: as_of.to_string(),
                last_seen,
            }
        })
        .collect()
}

/// Evidence in `fresh` that `old` did not have: a new record, or a higher amount.
pub fn new_evidence(old: &[Evidence], fresh: &[Evidence]) -> Vec<Evidence> {
    fresh
        .iter()
        .filter(
            |f| match old.iter().find(|o| o.identity() == f.identity()) {
                None => true,
                Some(o) => f.amount.unwrap_or(0.0) > o.amount.unwrap_or(0.0) + 1e-9,
            },
        )
        .cloned()
        .collect()
}

/// The stored warning after this run, and the event, if anything changed.
pub fn merge(existing: Option<&Warning>, fresh: Warning) -> Option<(Warning, Event)> {
    let event = |w: &Warning, name: &str, detail: String| Event {
        event_id: event_id(&w.warning_id, name, &w.evidence_hash),
        warning_id: w.warning_id.clone(),
        event: name.to_string(),
        evidence_hash: w.evidence_hash.clone(),
        detail,
    };
    let Some(old) = existing else {
        let detail = format!("{} record(s): {}", fresh.records, fresh.rules);
        let e = event(&fresh, "raised", detail);
        return Some((fresh, e));
    };
    if old.evidence_hash == fresh.evidence_hash {
        return None;
    }
    let added = new_evidence(&old.evidence, &fresh.evidence);
    let keys = |list: &[Evidence]| {
        list.iter()
            .map(|e| e.record_key.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match old.status.as_str() {
        "verified" | "closed" => {
            if added.is_empty() {
                return None;
            }
            let mut w = fresh;
            w.first_seen = old.first_seen.clone();
            w.status = "open".into();
            w.outcome = None;
            w.new_evidence = added.clone();
            let e = event(
                &w,
                "reopened",
                format!("new evidence after {}: {}", old.status, keys(&added)),
            );
            Some((w, e))
        }
        _ => {
            let mut w = fresh;
            w.first_seen = old.first_seen.clone();
            w.status = "open".into();
            w.new_evidence = added.clone();
            let e = event(
                &w,
                "updated",
                format!(
                    "evidence now {} record(s); new: {}",
                    w.records,
                    keys(&added)
                ),
            );
            Some((w, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(key: &str, amount: f64) -> Evidence {
        Evidence {
            rule: "r".into(),
            source: "health".into(),
            record_key: key.into(),
            person_id: Some("P1".into()),
            event_date: Some("2026-03-01".into()),
            amount: Some(amount),
            detail: String::new(),
            severity: "high".into(),
        }
    }

    fn one(evidence: Vec<Evidence>) -> Warning {
        let signals = evidence
            .into_iter()
            .map(|e| ("H1".to_string(), "因病".to_string(), "2026".to_string(), e))
            .collect();
        combine(signals, "2026-08-01").remove(0)
    }

    #[test]
    fn stable_ids_and_no_change_on_rerun() {
        let a = one(vec![ev("A", 100.0)]);
        let b = one(vec![ev("A", 100.0)]);
        assert_eq!(a.warning_id, b.warning_id);
        let (stored, raised) = merge(None, a).unwrap();
        assert_eq!(raised.event, "raised");
        assert!(merge(Some(&stored), b).is_none());
    }

    #[test]
    fn verified_warnings_reopen_only_on_new_evidence() {
        let (mut stored, _) = merge(None, one(vec![ev("A", 100.0)])).unwrap();
        stored.status = "verified".into();
        // Same evidence: nothing. A lower amount: nothing new either.
        assert!(merge(Some(&stored), one(vec![ev("A", 100.0)])).is_none());
        assert!(merge(Some(&stored), one(vec![ev("A", 90.0)])).is_none());
        // A higher amount reopens, and so does a new record.
        let (w, e) = merge(Some(&stored), one(vec![ev("A", 120.0)])).unwrap();
        assert_eq!((w.status.as_str(), e.event.as_str()), ("open", "reopened"));
        assert_eq!(w.new_evidence[0].record_key, "A");
        let (w, _) = merge(Some(&stored), one(vec![ev("A", 100.0), ev("B", 5.0)])).unwrap();
        assert_eq!(w.new_evidence.len(), 1);
        assert_eq!(w.new_evidence[0].record_key, "B");
        assert_eq!(w.first_seen, stored.first_seen);
    }

    #[test]
    fn open_warnings_update_when_evidence_changes() {
        let (stored, _) = merge(None, one(vec![ev("A", 100.0)])).unwrap();
        let (w, e) = merge(Some(&stored), one(vec![ev("A", 100.0), ev("B", 1.0)])).unwrap();
        assert_eq!(e.event, "updated");
        assert_eq!(w.records, 2);
    }
}
