//! Cron schedules in China's time zone (Asia/Shanghai, UTC+8 all year).

use std::str::FromStr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use croner::Cron;

pub use crate::identity::{china, china_today};

/// A pipeline's schedule: standard five-field cron expressions
/// (minute hour day-of-month month day-of-week), Asia/Shanghai time.
pub struct Schedule {
    crons: Vec<(String, Cron)>,
}

impl Schedule {
    /// Parse cron expressions (`0 2 * * *`, China time); none means nothing runs on a schedule.
    pub fn parse(expressions: &[String]) -> Result<Schedule> {
        // No expressions: a service that runs nothing on its own (the API
        // and delivery only); `next_after` and `missed` return None.
        let crons = expressions
            .iter()
            .map(|e| {
                Cron::from_str(e).map(|c| (e.clone(), c)).with_context(|| {
                    format!(
                        "schedule '{e}' is not a cron expression (minute hour day month weekday)"
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(Schedule { crons })
    }

    /// The first scheduled time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&china());
        self.crons
            .iter()
            .filter_map(|(_, c)| c.find_next_occurrence(&local, false).ok())
            .min()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest scheduled time at or before `now`.
    pub fn last_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&china());
        self.crons
            .iter()
            .filter_map(|(_, c)| c.find_previous_occurrence(&local, true).ok())
            .max()
            .map(|t| t.with_timezone(&Utc))
    }

    /// A scheduled run that should have happened since the last run started
    /// (the service was down): when to say it was due.
    pub fn missed(
        &self,
        last_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let due = self.last_at_or_before(now)?;
        match last_run {
            Some(last) if last >= due => None,
            _ => Some(due),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_are_in_china_time() {
        let s = Schedule::parse(&["0 2 1,11,21 * *".to_string()]).unwrap();
        // 2026-11-10 20:00 UTC is 2026-11-11 04:00 in Shanghai: the 02:00 run that day has passed.
        let now = Utc.with_ymd_and_hms(2026, 11, 10, 20, 0, 0).unwrap();
        assert_eq!(
            s.last_at_or_before(now),
            Some(Utc.with_ymd_and_hms(2026, 11, 10, 18, 0, 0).unwrap())
        );
        assert_eq!(
            s.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 11, 20, 18, 0, 0).unwrap())
        );
        // A run that started after the due time means nothing was missed.
        assert_eq!(
            s.missed(
                Some(Utc.with_ymd_and_hms(2026, 11, 10, 18, 5, 0).unwrap()),
                now
            ),
            None
        );
        assert!(
            s.missed(
                Some(Utc.with_ymd_and_hms(2026, 11, 1, 18, 5, 0).unwrap()),
                now
            )
            .is_some()
        );
        assert!(s.missed(None, now).is_some());
    }

    #[test]
    fn bad_expressions_are_named() {
        let Err(err) = Schedule::parse(&["every tuesday".to_string()]) else {
            panic!("a bad expression was accepted");
        };
        assert!(format!("{err:#}").contains("every tuesday"));
        let none = Schedule::parse(&[]).unwrap();
        assert!(none.next_after(Utc::now()).is_none());
        assert!(none.missed(None, Utc::now()).is_none());
    }
}
