//! The words of the warning stage, as enums with the text the lake keeps:
//! what a warning is (kind), where it stands (status), what staff found
//! (outcome), how grave it is (severity), what happened to it (event), and
//! how warnings are decided (mode).

use serde::{Deserialize, Serialize};

macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the lake and sent over the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value for its text, if it is one.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text.trim())
            }

            /// Every value's text.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }

            /// The value as a SQL string literal.
            pub fn sql(self) -> String {
                format!("'{}'", self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// Where a warning stands.
    Status {
        /// A task for village staff.
        Open = "open",
        /// Waiting for the village's monthly capacity; it becomes open in
        /// rank order.
        Queued = "queued",
        /// Staff visited and reported an outcome.
        Verified = "verified",
        /// Closed without a visit.
        Closed = "closed",
    }
}

words! {
    /// What a warning says.
    Kind {
        /// The household's estimated income crossed the monitoring line
        /// this period, or a 三保障 duty failed (assessment mode).
        EarlyWarning = "early_warning",
        /// The roster's own income figure is below the line and the
        /// household is not monitored (名册收入低于监测标准但未纳入监测).
        RosterBelowLine = "roster_below_line",
        /// A rule fired (every-rule mode: every clue is a task).
        Clue = "clue",
    }
}

words! {
    /// What staff found, or a decision to close.
    Outcome {
        /// Taken into monitoring (纳入监测).
        Included = "included",
        /// Not taken in (不纳入), with a reason.
        NotIncluded = "not_included",
        /// Risk eliminated (风险消除).
        RiskEliminated = "risk_eliminated",
        /// Closed without a visit.
        Closed = "closed",
    }
}

words! {
    /// How grave a warning or a piece of evidence is.
    Severity {
        /// Act first.
        High = "high",
        /// The default.
        Medium = "medium",
        /// Worth a look.
        Low = "low",
    }
}

words! {
    /// A change of a warning, recorded in `warning_events`.
    EventKind {
        /// A new warning, open as a task.
        Raised = "raised",
        /// A new warning waiting for capacity (not pushed).
        Queued = "queued",
        /// A queued warning became a task.
        Released = "released",
        /// An open warning's evidence changed.
        Updated = "updated",
        /// New evidence after a verification or closing.
        Reopened = "reopened",
        /// Staff recorded a visit.
        Verified = "verified",
        /// Closed without a visit.
        Closed = "closed",
    }
}

/// How warnings are decided (a setting of the pipeline file, so it lives
/// in `config`).
pub use crate::config::WarnMode as Mode;

impl Outcome {
    /// The outcomes a household visit can report (closing is not a visit).
    pub const VISITS: &'static [Outcome] = &[
        Outcome::Included,
        Outcome::NotIncluded,
        Outcome::RiskEliminated,
    ];
}

impl Severity {
    /// 3 for high, 2 for medium, 1 for low: for ranking and scores.
    pub fn rank(self) -> u8 {
        match self {
            Severity::High => 3,
            Severity::Medium => 2,
            Severity::Low => 1,
        }
    }
}

/// One piece of evidence of a warning, as the `evidence` JSON holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The rule or assessment component that produced it.
    pub rule: String,
    /// The department source of the record.
    pub source: String,
    /// The record's key in its source.
    pub record_key: String,
    /// The roster person it is about, when it is about one.
    pub person_id: Option<String>,
    /// When it happened.
    pub event_date: Option<String>,
    /// The amount it carries (yuan), when it carries one.
    pub amount: Option<f64>,
    /// What it says, for a person.
    pub detail: String,
    /// high, medium or low.
    pub severity: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            Kind::parse("roster_below_line"),
            Some(Kind::RosterBelowLine)
        );
        assert_eq!(Outcome::parse(" included "), Some(Outcome::Included));
        assert!(Outcome::parse("maybe").is_none());
        assert_eq!(Severity::High.sql(), "'high'");
        assert_eq!(
            serde_json::to_string(&Mode::EveryRule).unwrap(),
            "\"every_rule\""
        );
        assert_eq!(Mode::parse("every_rule"), Some(Mode::EveryRule));
    }
}
