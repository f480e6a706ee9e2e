//! Each roster household's year, simulated: who earns what (migrant work,
//! local work, farming, pensions), what happens to them (hospital stays,
//! job loss with the months and wages lost, death or disability of an
//! earner, a child leaving school), and what relief they receive (低保,
//! 临时救助). The department records of roster people come from here, and
//! show only what real extracts show: the job-loss registration but not
//! the wages lost, the self-payment but not the household's other spending,
//! the death but not the income it took away.
//!
//! The truth — per-capita net income before and after the year's shocks,
//! and what that makes the household — goes to `truth_households.csv`.

use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use rand::seq::IndexedRandom;

use super::habits::Habits;
use super::{World, lognormal};

/// The world's economy: every assumption the benchmark sweeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Economy {
    /// Median per-capita income before the year's shocks (yuan).
    pub income_median: f64,
    /// Spread of per-capita income (log-normal sigma).
    pub income_sigma: f64,
    /// How far the roster's income figure is from the truth (log-normal
    /// sigma): the survey behind it is a year old.
    pub roster_noise: f64,
    /// Multiplies the chance of every shock.
    pub shock_rate: f64,
    /// Multiplies the size of every shock (costs, months lost).
    pub shock_size: f64,
    /// The monitoring line the truth is judged by (yuan a head).
    pub line: f64,
    /// Records about namesakes of roster people who are not on the roster,
    /// out of all of an extract's records (at most the 35 % not about
    /// roster people; the rest of those are strangers).
    pub namesake_share: f64,
    /// Records whose ID number the department left out, beyond the usual
    /// clerical dirt, whoever they are about.
    pub no_id_share: f64,
}

impl Default for Economy {
    fn default() -> Self {
        Economy {
            income_median: 13_000.0,
            income_sigma: 0.45,
            roster_noise: 0.06,
            shock_rate: 1.0,
            shock_size: 1.0,
            line: 8_800.0,
            namesake_share: 0.10,
            no_id_share: 0.0,
        }
    }
}

impl Economy {
    /// Parse `--world key=value,key=value` over the defaults: the economy's
    /// keys here, the departments' writing habits (`super::habits`).
    pub fn parse(text: &str) -> anyhow::Result<(Economy, Habits)> {
        let mut e = Economy::default();
        let mut habits = Habits::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                anyhow::bail!("--world {part}: expected key=value");
            };
            let (k, v) = (k.trim(), v.trim());
            if habits.set(k, v)? {
                continue;
            }
            let slot = match k {
                "income_median" => &mut e.income_median,
                "income_sigma" => &mut e.income_sigma,
                "roster_noise" => &mut e.roster_noise,
                "shock_rate" => &mut e.shock_rate,
                "shock_size" => &mut e.shock_size,
                "line" => &mut e.line,
                "namesake_share" => &mut e.namesake_share,
                "no_id_share" => &mut e.no_id_share,
                other => anyhow::bail!(
                    "--world {other}: not a world parameter (income_median, income_sigma, roster_noise, shock_rate, shock_size, line, namesake_share, no_id_share, {})",
                    super::habits::KEYS
                ),
            };
            let v: f64 = v
                .parse()
                .map_err(|_| anyhow::anyhow!("--world {k}: '{v}' is not a number"))?;
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("--world {k}: must be a number ≥ 0");
            }
            *slot = v;
        }
        if e.namesake_share > 1.0 - super::ROSTER_SHARE {
            anyhow::bail!(
                "--world namesake_share: at most {:.2}, the share of records not about roster people",
                1.0 - super::ROSTER_SHARE
            );
        }
        Ok((e, habits))
    }
}

/// What a household's year was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Pushed below the line this year, or a 三保障 failure.
    NewlyAtRisk,
    /// Below the line before any shock.
    AlreadyBelow,
    /// Neither.
    NotAtRisk,
}

impl Status {
    /// The value in `truth_households.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NewlyAtRisk => "newly_at_risk",
            Status::AlreadyBelow => "already_below",
            Status::NotAtRisk => "not_at_risk",
        }
    }
}

/// One household's truth.
#[derive(Debug, Clone)]
pub struct HouseholdTruth {
    /// Income a head before the year's shocks.
    pub before: f64,
    /// Income a head after them (and after self-paid medical costs), with
    /// relief received.
    pub after: f64,
    /// newly at risk, already below, not at risk.
    pub status: Status,
    /// The risk type of the shock that took the most (or 因学).
    pub cause: &'static str,
    /// Records about its members in the extracts this period.
    pub records: usize,
    /// Whether the shock behind its status left any record: a household
    /// whose job loss was never registered cannot be found from the data.
    pub observable: bool,
}

/// What a department writes about a roster member, and when.
#[derive(Debug, Clone)]
pub enum Event {
    /// A settlement: self-paid and the rest, in fen.
    Health {
        /// 门诊 (outpatient) or 住院 (inpatient).
        visit: &'static str,
        /// Diagnosis text.
        diagnosis: &'static str,
        /// Whether the diagnosis is one of the serious illnesses.
        serious: bool,
        /// Admission (or visit) day.
        admitted: NaiveDate,
        /// Total cost, in fen.
        total: i64,
        /// Paid by the household after reimbursement, in fen.
        self_paid: i64,
    },
    /// A civil affairs case: kind, action, monthly or one-off amount in fen.
    Civil {
        /// Case kind (低保, 临时救助, 残疾人两项补贴, 死亡登记, …).
        kind: &'static str,
        /// What happened to it (新增, 登记, …).
        action: &'static str,
        /// When it took effect.
        date: NaiveDate,
        /// Monthly or one-off amount, in fen.
        amount: Option<i64>,
        /// Disability grade, for disability cases.
        grade: Option<&'static str>,
    },
    /// A school status change.
    School {
        /// The school status (在读, 辍学, …).
        status: &'static str,
        /// When it changed.
        date: NaiveDate,
    },
    /// A social insurance event: type, date, monthly contribution base in fen.
    Social {
        /// Event type (参保缴费, 失业登记, 就业登记, …).
        event: &'static str,
        /// When it happened.
        date: NaiveDate,
        /// Monthly contribution base, in fen.
        base: i64,
    },
}

impl Event {
    /// The source whose extract carries it.
    pub fn source(&self) -> &'static str {
        match self {
            Event::Health { .. } => "health",
            Event::Civil { .. } => "civil_affairs",
            Event::School { .. } => "education",
            Event::Social { .. } => "social_insurance",
        }
    }
}

/// One household's year as it is being simulated.
#[derive(Debug, Clone, Default)]
pub struct HouseholdYear {
    size: f64,
    income: f64,
    /// Lost: medical self-payments, wages, a dead earner's income, a
    /// disabled earner's income (yuan).
    lost: [f64; 4],
    relief: f64,
    dropout: bool,
    records: usize,
    /// Whether each shock left a record: medical, job loss, death,
    /// disability, drop-out.
    seen: [bool; 5],
}

/// The year: the events about each roster member (by member index) and
/// each household's year (by household index).
pub(crate) struct Year {
    /// (member index, event), in no particular order.
    pub events: Vec<(usize, Event)>,
    /// One per household.
    pub households: Vec<HouseholdYear>,
    /// The roster's income figure for each household (annual, yuan).
    pub roster_income: Vec<i64>,
}

impl Year {
    /// Records about roster members in one source.
    pub fn count(&self, source: &str) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| e.source() == source)
            .count()
    }

    /// Add `n` routine records to `source` (an outpatient visit, a
    /// contribution, a mild disability subsidy, a pupil's status), so an
    /// extract reaches a requested size; their costs count in the truth.
    pub(crate) fn add_routine(
        &mut self,
        world: &mut World,
        source: &str,
        n: usize,
        as_of: NaiveDate,
    ) {
        let members = world.members.len();
        for _ in 0..n {
            let m = world.rng.random_range(0..members);
            let h = world.members[m].household;
            let rng = &mut world.rng;
            let event = match source {
                "health" => {
                    let total = (15_000.0 * lognormal(rng, 0.7)) as i64;
                    let self_paid = (total as f64 * rng.random_range(0.3..0.6)) as i64;
                    self.households[h].lost[0] += self_paid as f64 / 100.0;
                    self.households[h].seen[0] = true;
                    let diagnosis = OUTPATIENT.choose(rng).copied().unwrap_or("胃炎");
                    Event::Health {
                        visit: "门诊",
                        diagnosis,
                        serious: false,
                        admitted: day_in_year(rng, as_of),
                        total,
                        self_paid,
                    }
                }
                "social_insurance" => Event::Social {
                    event: "参保缴费",
                    date: day_in_year(rng, as_of),
                    base: rng.random_range(200_000..600_000),
                },
                "civil_affairs" => Event::Civil {
                    kind: "残疾人两项补贴",
                    action: "新增",
                    date: day_in_year(rng, as_of),
                    amount: Some(rng.random_range(5_000..10_000)),
                    grade: Some(*["三级", "四级"].choose(rng).expect("grades")),
                },
                _ => Event::School {
                    status: "在读",
                    date: day_in_year(rng, as_of),
                },
            };
            self.households[h].records += 1;
            self.events.push((m, event));
        }
    }

    /// What each household's year was, judged by the economy's line.
    pub fn judge(&self, economy: &Economy) -> Vec<HouseholdTruth> {
        let causes = ["因病", "因务工就业不稳", "缺劳动力", "因残"];
        self.households
            .iter()
            .map(|y| {
                let before = y.income / y.size;
                let after = (y.income - y.lost.iter().sum::<f64>() + y.relief) / y.size;
                let (top, _) = y
                    .lost
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::MIN),
                        |best, (i, v)| if *v > best.1 { (i, *v) } else { best },
                    );
                let status = if before < economy.line {
                    Status::AlreadyBelow
                } else if after < economy.line || y.dropout {
                    Status::NewlyAtRisk
                } else {
                    Status::NotAtRisk
                };
                let cause = if y.dropout && after >= economy.line {
                    "因学"
                } else if y.lost.iter().sum::<f64>() > 0.0 {
                    causes[top]
                } else {
                    "其他"
                };
                let observable = match cause {
                    "因学" => y.seen[4],
                    _ if status == Status::NewlyAtRisk && y.dropout && y.seen[4] => true,
                    _ => y.seen[top] || (y.dropout && y.seen[4]),
                };
                HouseholdTruth {
                    before,
                    after,
                    status,
                    cause,
                    records: y.records,
                    observable,
                }
            })
            .collect()
    }
}

const YEAR_START: (i32, u32, u32) = (2026, 1, 1);

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(YEAR_START.0, YEAR_START.1, YEAR_START.2).expect("date")
}

/// Months from `from` to `to` (whole, ≥ 0), as the assessment counts them.
fn months_between(from: NaiveDate, to: NaiveDate) -> f64 {
    let m = (to.year() * 12 + to.month() as i32) - (from.year() * 12 + from.month() as i32);
    f64::from(m.max(0))
}

fn day_in_year(rng: &mut impl Rng, as_of: NaiveDate) -> NaiveDate {
    let days = (as_of - start()).num_days().max(1);
    start() + Duration::days(rng.random_range(0..days))
}

/// Diagnoses of stays: (name, serious, weight).
const STAYS: &[(&str, bool, u32)] = &[
    ("肺炎", false, 20),
    ("骨折", false, 12),
    ("冠心病", false, 12),
    ("2型糖尿病", false, 10),
    ("慢性阻塞性肺病", false, 10),
    ("腰椎间盘突出", false, 8),
    ("脑梗死", true, 4),
    ("恶性肿瘤", true, 4),
    ("慢性肾衰竭(尿毒症期)", true, 2),
    ("白血病", true, 1),
];

const OUTPATIENT: &[&str] = &["急性上呼吸道感染", "高血压", "2型糖尿病", "胃炎"];

/// Simulate every roster household's year.
pub(crate) fn simulate(world: &mut World, economy: &Economy, as_of: NaiveDate) -> Year {
    let rate = economy.shock_rate;
    let size_scale = economy.shock_size;
    let mut events: Vec<(usize, Event)> = Vec::new();
    let mut years = Vec::with_capacity(world.households.len());
    let mut roster_income = Vec::with_capacity(world.households.len());
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); world.households.len()];
    for (i, m) in world.members.iter().enumerate() {
        members_of[m.household].push(i);
    }
    for (h, members) in members_of.iter().enumerate() {
        let rng = &mut world.rng;
        let size = members.len().max(1) as f64;
        let before = world.households[h].per_capita as f64;
        let income = before * size;
        roster_income.push((income * lognormal(rng, economy.roster_noise)).round() as i64);
        let ages: Vec<i64> = members
            .iter()
            .map(|&m| (as_of - world.members[m].person.birth).num_days() / 365)
            .collect();
        // Earners: working-age members who are not in school; pensions for
        // the old; the rest of the income split among earners by work.
        let mut weights = Vec::new();
        for (k, &age) in ages.iter().enumerate() {
            let student = (16..=22).contains(&age) && rng.random_bool(0.35);
            if (16..=60).contains(&age) && !student {
                let w: f64 = *[3.0, 2.0, 1.0]
                    .choose_weighted(rng, |w| match *w as i32 {
                        3 => 45,
                        2 => 30,
                        _ => 25,
                    })
                    .expect("weights");
                weights.push((k, w));
            }
        }
        let pensions = 1_800.0 * ages.iter().filter(|a| **a > 60).count() as f64;
        let wage_pool = (income - pensions).max(0.0);
        let total_weight: f64 = weights.iter().map(|(_, w)| w).sum();
        let wage = |k: usize| -> f64 {
            weights
                .iter()
                .find(|(j, _)| *j == k)
                .map_or(0.0, |(_, w)| wage_pool * w / total_weight.max(1e-9))
        };
        let mut lost = [0.0f64; 4]; // medical, job, death, disability
        let mut relief = 0.0;
        let mut dropout = false;
        let mut seen = [false; 5];
        let mut first_shock: Option<NaiveDate> = None;
        let mut records = 0usize;
        let mut add = |member: usize, e: Event, events: &mut Vec<(usize, Event)>| {
            records += 1;
            events.push((member, e));
        };

        for (k, &m) in members.iter().enumerate() {
            let age = ages[k];
            // Hospital stays, outpatient visits and chronic care.
            let stay_p = (if age >= 60 { 0.12 } else { 0.05 } * rate).min(0.9);
            let mut stays = u32::from(rng.random_bool(stay_p));
            if stays > 0 && rng.random_bool(0.25) {
                stays += 1;
            }
            for _ in 0..stays {
                let (diagnosis, serious, _) = *STAYS.choose_weighted(rng, |d| d.2).expect("stays");
                let median = 800_000.0 * if serious { 4.0 } else { 1.0 };
                let total = (median * lognormal(rng, 0.8) * size_scale) as i64;
                let self_paid = (total as f64 * rng.random_range(0.15..0.40)) as i64;
                let admitted = day_in_year(rng, as_of);
                lost[0] += self_paid as f64 / 100.0;
                first_shock = Some(first_shock.map_or(admitted, |d| d.min(admitted)));
                seen[0] = true;
                add(
                    m,
                    Event::Health {
                        visit: "住院",
                        diagnosis,
                        serious,
                        admitted,
                        total,
                        self_paid,
                    },
                    &mut events,
                );
            }
            let visits = (0..4).filter(|_| rng.random_bool(0.045)).count();
            for _ in 0..visits {
                let total = (15_000.0 * lognormal(rng, 0.7)) as i64;
                let self_paid = (total as f64 * rng.random_range(0.3..0.6)) as i64;
                lost[0] += self_paid as f64 / 100.0;
                seen[0] = true;
                let diagnosis = OUTPATIENT.choose(rng).copied().unwrap_or("胃炎");
                add(
                    m,
                    Event::Health {
                        visit: "门诊",
                        diagnosis,
                        serious: false,
                        admitted: day_in_year(rng, as_of),
                        total,
                        self_paid,
                    },
                    &mut events,
                );
            }
            if rng.random_bool(0.02) {
                let total = (150_000.0 * lognormal(rng, 0.6)) as i64;
                let self_paid = (total as f64 * rng.random_range(0.2..0.4)) as i64;
                lost[0] += self_paid as f64 / 100.0;
                seen[0] = true;
                add(
                    m,
                    Event::Health {
                        visit: "门诊慢特病",
                        diagnosis: "高血压",
                        serious: false,
                        admitted: day_in_year(rng, as_of),
                        total,
                        self_paid,
                    },
                    &mut events,
                );
            }

            let earner_wage = wage(k);
            let waged = earner_wage > 0.0 && weights.iter().any(|(j, w)| *j == k && *w >= 2.0);
            // Losing wage work.
            if waged && rng.random_bool((0.06 * rate).min(0.9)) {
                let date = day_in_year(rng, as_of);
                let months = (rng.random_range(2.0..9.0) * size_scale).round().max(1.0);
                let months = months.min(months_between(date, as_of).max(1.0));
                lost[1] += earner_wage / 12.0 * months;
                first_shock = Some(first_shock.map_or(date, |d| d.min(date)));
                let base = (earner_wage / 12.0 * rng.random_range(0.6..1.0) * 100.0) as i64;
                if rng.random_bool(0.8) {
                    seen[1] = true;
                    let event = if rng.random_bool(0.6) {
                        "失业登记"
                    } else {
                        "停止缴费"
                    };
                    add(m, Event::Social { event, date, base }, &mut events);
                }
                let back = date + Duration::days((months * 30.4) as i64);
                if back <= as_of && rng.random_bool(0.6) {
                    add(
                        m,
                        Event::Social {
                            event: "就业登记",
                            date: back,
                            base,
                        },
                        &mut events,
                    );
                }
            } else if waged && rng.random_bool(0.09) {
                // Routine: contributions and registrations.
                let base = (earner_wage / 12.0 * rng.random_range(0.6..1.0) * 100.0) as i64;
                let event = if rng.random_bool(0.5) {
                    "参保缴费"
                } else {
                    "就业登记"
                };
                add(
                    m,
                    Event::Social {
                        event,
                        date: day_in_year(rng, as_of),
                        base,
                    },
                    &mut events,
                );
            }
            // Death, of an earner or of an old member.
            let death_p = if (16..=60).contains(&age) {
                0.003
            } else if age > 60 {
                0.015
            } else {
                0.0
            };
            if rng.random_bool((death_p * rate).min(0.9)) {
                let date = day_in_year(rng, as_of);
                if earner_wage > 0.0 {
                    lost[2] += earner_wage / 12.0 * months_between(date, as_of);
                    first_shock = Some(first_shock.map_or(date, |d| d.min(date)));
                }
                if rng.random_bool(0.95) {
                    seen[2] = true;
                    add(
                        m,
                        Event::Civil {
                            kind: "死亡登记",
                            action: "登记",
                            date,
                            amount: None,
                            grade: None,
                        },
                        &mut events,
                    );
                }
            }
            // Disability: severe takes most of an earner's income; mild only
            // brings a subsidy record.
            if rng.random_bool((0.003 * rate).min(0.9)) {
                let date = day_in_year(rng, as_of);
                lost[3] += 0.7 * earner_wage / 12.0 * months_between(date, as_of);
                if earner_wage > 0.0 {
                    first_shock = Some(first_shock.map_or(date, |d| d.min(date)));
                }
                let grade = *["一级", "二级"].choose(rng).expect("grades");
                seen[3] = true;
                add(
                    m,
                    Event::Civil {
                        kind: "残疾人两项补贴",
                        action: "新增",
                        date,
                        amount: Some(rng.random_range(10_000..20_000)),
                        grade: Some(grade),
                    },
                    &mut events,
                );
            } else if rng.random_bool(0.006) {
                let grade = *["三级", "四级"].choose(rng).expect("grades");
                add(
                    m,
                    Event::Civil {
                        kind: "残疾人两项补贴",
                        action: "新增",
                        date: day_in_year(rng, as_of),
                        amount: Some(rng.random_range(5_000..10_000)),
                        grade: Some(grade),
                    },
                    &mut events,
                );
            }
            // School: a compulsory-age child leaving is a 三保障 failure;
            // other status records are routine.
            if (6..=15).contains(&age) && rng.random_bool((0.012 * rate).min(0.9)) {
                dropout = true;
                if rng.random_bool(0.9) {
                    seen[4] = true;
                    add(
                        m,
                        Event::School {
                            status: "辍学",
                            date: day_in_year(rng, as_of),
                        },
                        &mut events,
                    );
                }
            } else if (6..=22).contains(&age) && rng.random_bool(0.3) {
                let status = *["在读", "在读", "在读", "在读", "转学", "毕业", "休学"]
                    .choose(rng)
                    .expect("statuses");
                add(
                    m,
                    Event::School {
                        status,
                        date: day_in_year(rng, as_of),
                    },
                    &mut events,
                );
            }
        }

        let before_relief = (income - lost.iter().sum::<f64>()) / size;
        let head = members[0];
        if let Some(shocked) = first_shock {
            // Relief reaches some of the households the year pushed down.
            if before_relief < economy.line && rng.random_bool(0.4) {
                let date = (shocked + Duration::days(rng.random_range(30..90))).min(as_of);
                let monthly = ((6_000.0 - before_relief.max(0.0)).max(1_800.0) / 12.0
                    * size
                    * rng.random_range(0.6..1.0))
                .round();
                relief += monthly * months_between(date, as_of);
                add(
                    head,
                    Event::Civil {
                        kind: "低保",
                        action: "新增",
                        date,
                        amount: Some((monthly * 100.0) as i64),
                        grade: None,
                    },
                    &mut events,
                );
            }
            if rng.random_bool(0.2) {
                let date = (shocked + Duration::days(rng.random_range(10..40))).min(as_of);
                let amount = rng.random_range(1_000..4_000) as f64;
                relief += amount;
                add(
                    head,
                    Event::Civil {
                        kind: "临时救助",
                        action: "发放",
                        date,
                        amount: Some((amount * 100.0) as i64),
                        grade: None,
                    },
                    &mut events,
                );
            }
        } else if world.households[h].category == "低保户" && rng.random_bool(0.05) {
            add(
                head,
                Event::Civil {
                    kind: "低保",
                    action: "取消",
                    date: day_in_year(rng, as_of),
                    amount: None,
                    grade: None,
                },
                &mut events,
            );
        }

        years.push(HouseholdYear {
            size,
            income,
            lost,
            relief,
            dropout,
            records,
            seen,
        });
    }
    Year {
        events,
        households: years,
        roster_income,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_parameters_parse_and_are_checked() {
        let (e, habits) =
            Economy::parse("income_median=10000, shock_size=1.5, region=county").unwrap();
        assert_eq!(
            (e.income_median, e.shock_size, e.shock_rate),
            (10_000.0, 1.5, 1.0)
        );
        assert_eq!(
            habits.region,
            Some(super::super::habits::RegionLevel::County)
        );
        let e = Economy::parse("income=1").unwrap_err().to_string();
        assert!(e.contains("income") && e.contains("birth_share"), "{e}");
        assert!(Economy::parse("income=1").is_err());
        assert!(Economy::parse("shock_rate=-1").is_err());
        assert!(Economy::parse("line=abc").is_err());
    }

    #[test]
    fn months_are_counted_as_the_assessment_counts_them() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert_eq!(months_between(d(3, 15), d(11, 20)), 8.0);
        assert_eq!(months_between(d(11, 20), d(3, 15)), 0.0);
    }
}
