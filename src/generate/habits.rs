//! How departments write their records: how often they fill in the birth
//! date, how finely they name the place, and how they misspell names. The
//! defaults are the generator's usual world; `--world` changes them, so
//! the link benchmark can sweep worlds the linker was not tuned to.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::SOURCES;
use super::dirt::NAME_KINDS;

/// How finely a department writes where a person lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionLevel {
    /// The 6-digit county code only.
    County,
    /// The 12-digit code of the township (its village digits zero).
    Township,
    /// The 12-digit village code.
    Village,
}

impl RegionLevel {
    fn parse(text: &str) -> Option<RegionLevel> {
        match text {
            "county" | "县" => Some(RegionLevel::County),
            "township" | "乡镇" => Some(RegionLevel::Township),
            "village" | "村" => Some(RegionLevel::Village),
            _ => None,
        }
    }
}

/// The departments' writing habits.
#[derive(Debug, Clone, PartialEq)]
pub struct Habits {
    /// Per department, the share of records that carry the birth date.
    pub birth_share: BTreeMap<&'static str, f64>,
    /// Every department writes the place at this level; `None` keeps each
    /// department's own mix (civil affairs mostly the village, education
    /// mostly the township, health only the county).
    pub region: Option<RegionLevel>,
    /// Multiplies the share of records with a damaged name: by default a
    /// fifth of the records about roster people and 15 % of the others.
    pub name_dirt: f64,
    /// Relative weights of the kinds of name damage, in `NAME_KINDS` order.
    pub name_kinds: [f64; NAME_KINDS.len()],
}

impl Default for Habits {
    fn default() -> Self {
        Habits {
            birth_share: SOURCES
                .iter()
                .map(|&s| {
                    let share = match s {
                        "civil_affairs" => 0.8,
                        "health" => 0.5,
                        // Pupils' records always carry the birth date.
                        "education" => 1.0,
                        _ => 0.95,
                    };
                    (s, share)
                })
                .collect(),
            region: None,
            name_dirt: 1.0,
            name_kinds: [1.0; NAME_KINDS.len()],
        }
    }
}

/// The `--world` keys `Habits::set` takes, for error messages.
pub const KEYS: &str = "birth_share, birth_share.<department>, region (county, township or village), name_dirt, and the kinds of name dirt as weights (name_homophone, name_lookalike, name_traditional, name_dropped, name_spaces, name_separator)";

impl Habits {
    /// Set one `--world` key. Returns false when the key is not a habit.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        if key == "region" {
            self.region = Some(RegionLevel::parse(value).ok_or_else(|| {
                anyhow::anyhow!("--world region: '{value}' is not county, township or village")
            })?);
            return Ok(true);
        }
        // Which habit the key names, before its value is read.
        enum Slot<'k> {
            EveryBirth,
            Birth(&'k str),
            NameDirt,
            NameKind(usize),
        }
        let slot = if key == "birth_share" {
            Slot::EveryBirth
        } else if let Some(d) = key.strip_prefix("birth_share.") {
            if !SOURCES.contains(&d) {
                bail!(
                    "--world {key}: '{d}' is not a department ({})",
                    SOURCES.join(", ")
                );
            }
            Slot::Birth(d)
        } else if key == "name_dirt" {
            Slot::NameDirt
        } else if let Some(i) = NAME_KINDS.iter().position(|k| *k == key) {
            Slot::NameKind(i)
        } else {
            return Ok(false);
        };
        let v: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| anyhow::anyhow!("--world {key}: '{value}' is not a number ≥ 0"))?;
        match slot {
            Slot::EveryBirth | Slot::Birth(_) if v > 1.0 => {
                bail!("--world {key}: a share, at most 1 (got {v})")
            }
            Slot::EveryBirth => self.birth_share.values_mut().for_each(|s| *s = v),
            Slot::Birth(d) => {
                if let Some(s) = self.birth_share.get_mut(d) {
                    *s = v;
                }
            }
            Slot::NameDirt => self.name_dirt = v,
            Slot::NameKind(i) => {
                let mut kinds = self.name_kinds;
                kinds[i] = v;
                if kinds.iter().all(|w| *w == 0.0) {
                    bail!("--world {key}: at least one kind of name dirt needs a weight above 0");
                }
                self.name_kinds = kinds;
            }
        }
        Ok(true)
    }

    /// The share of a department's records with a birth date.
    pub fn birth_share(&self, source: &str) -> f64 {
        self.birth_share.get(source).copied().unwrap_or(1.0)
    }

    /// Whether the default mix of name dirt kinds is in force: then the
    /// generator draws them as it always has, and a default world's files
    /// stay the same from release to release.
    pub fn even_name_kinds(&self) -> bool {
        self.name_kinds.iter().all(|w| *w == self.name_kinds[0])
    }

    /// Each department's usual mix: the shares of its records written at
    /// the village and at the township (the rest name only the county).
    pub fn region_mix(&self, source: &str) -> (f64, f64) {
        match self.region {
            Some(RegionLevel::Village) => (1.0, 0.0),
            Some(RegionLevel::Township) => (0.0, 1.0),
            Some(RegionLevel::County) => (0.0, 0.0),
            None => match source {
                "civil_affairs" => (0.9, 0.0),
                "health" => (0.0, 0.0),
                "education" => (0.0, 0.7),
                _ => (0.2, 0.0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(h: &mut Habits, key: &str, value: &str) -> Result<bool> {
        h.set(key, value)
    }

    #[test]
    fn a_world_sets_birth_dates_for_all_or_one_department() {
        let mut h = Habits::default();
        assert_eq!(h.birth_share("health"), 0.5);
        assert!(set(&mut h, "birth_share", "0").unwrap());
        assert!(SOURCES.iter().all(|s| h.birth_share(s) == 0.0));
        assert!(set(&mut h, "birth_share.education", "0.3").unwrap());
        assert_eq!(h.birth_share("education"), 0.3);
        assert_eq!(h.birth_share("health"), 0.0);
    }

    #[test]
    fn a_world_sets_the_region_level_for_every_department() {
        let mut h = Habits::default();
        assert_eq!(h.region_mix("civil_affairs"), (0.9, 0.0));
        assert!(set(&mut h, "region", "county").unwrap());
        assert!(SOURCES.iter().all(|s| h.region_mix(s) == (0.0, 0.0)));
        assert!(set(&mut h, "region", "村").unwrap());
        assert_eq!(h.region_mix("health"), (1.0, 0.0));
    }

    #[test]
    fn a_world_weights_the_kinds_of_name_dirt() {
        let mut h = Habits::default();
        assert!(h.even_name_kinds());
        assert!(set(&mut h, "name_dropped", "4").unwrap());
        assert!(set(&mut h, "name_dirt", "2").unwrap());
        assert!(!h.even_name_kinds());
        assert_eq!(h.name_dirt, 2.0);
    }

    #[test]
    fn bad_habits_are_refused_with_the_key_named() {
        let mut h = Habits::default();
        assert!(!set(&mut h, "income_median", "1").unwrap());
        let e = set(&mut h, "region", "province").unwrap_err().to_string();
        assert!(e.contains("region") && e.contains("province"), "{e}");
        let e = set(&mut h, "birth_share", "1.5").unwrap_err().to_string();
        assert!(e.contains("birth_share") && e.contains("at most 1"), "{e}");
        let e = set(&mut h, "birth_share.police", "0.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("police") && e.contains("health"), "{e}");
        let e = set(&mut h, "name_dirt", "lots").unwrap_err().to_string();
        assert!(e.contains("name_dirt") && e.contains("lots"), "{e}");
        let (last, rest) = NAME_KINDS.split_last().unwrap();
        for kind in rest {
            assert!(set(&mut h, kind, "0").unwrap());
        }
        let e = set(&mut h, last, "0").unwrap_err().to_string();
        assert!(e.contains("at least one kind"), "{e}");
        assert_eq!(h.name_kinds.last(), Some(&1.0));
    }
}
