//! Synthetic extracts with ground truth.
//!
//! `write` produces a roster of households and four department extracts.
//! Every roster household's year is simulated (`year`): its earners, the
//! shocks that hit it and the relief it received; the records about roster
//! people are what departments would write about that year (often with
//! damaged names and ID numbers). Records about namesakes of roster people
//! who are not on the roster, and about strangers, are mixed in.
//! `truth_<source>.csv` records, for every record key, the true roster
//! person's ID number (empty for non-roster people) and the dirt applied;
//! `truth_households.csv` what each household's year really was. Column
//! headers come from the schema files (`schemas/*.toml`), so the extracts
//! read the way the schemas say departments write them.

pub mod dirt;
pub mod habits;
pub mod names;
pub mod regions;
pub mod year;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, Duration, NaiveDate};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{FieldType, SourceSchema};
use dirt::{ID_KINDS, NAME_KINDS, dirty_id, dirty_name, make_id};
use habits::Habits;
use names::*;
use regions::{County, PLACE_SYLLABLES};
use year::{Economy, Event};

/// The four departments' sources the generator writes.
pub const SOURCES: &[&str] = &["civil_affairs", "health", "education", "social_insurance"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Roster households.
    pub households: usize,
    /// Random seed; the same options and seed give the same files.
    pub seed: u64,
    /// "utf-8", "gb18030", or per source "health:gb18030,civil_affairs:utf-8".
    pub encoding: String,
    /// Sources written as XLSX instead of CSV.
    pub xlsx_sources: Vec<String>,
    /// Row counts overriding the defaults, per source.
    pub rows: BTreeMap<String, usize>,
    /// Write only these department sources (all when empty); the roster is always written.
    pub only: Vec<String>,
    /// The world's economy: incomes and shocks.
    pub economy: Economy,
    /// How the departments write their records.
    pub habits: Habits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            households: 500,
            seed: 1,
            encoding: "utf-8".into(),
            xlsx_sources: Vec::new(),
            rows: BTreeMap::new(),
            only: Vec::new(),
            economy: Economy::default(),
            habits: Habits::default(),
        }
    }
}

/// The reference date the synthetic data is "extracted" on.
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).expect("fixed date")
}

#[derive(Clone)]
struct Person {
    name: String,
    id: String,
    male: bool,
    birth: NaiveDate,
    county: usize,
}

struct Member {
    person: Person,
    household: usize,
    relation: &'static str,
    member_id: String,
}

struct Household {
    number: String,
    county: usize,
    township_name: String,
    village_code: String,
    village_name: String,
    category: &'static str,
    per_capita: i64,
    risk_types: String,
    size: usize,
}

pub(crate) struct World {
    rng: ChaCha8Rng,
    surnames: WeightedIndex<u32>,
    male_names: WeightedIndex<u32>,
    female_names: WeightedIndex<u32>,
    used_ids: HashSet<String>,
    households: Vec<Household>,
    members: Vec<Member>,
    sequence: u32,
    counties: Vec<County>,
    /// Village codes (12 digits) of each county, filled with the roster.
    villages: Vec<Vec<String>>,
}

impl World {
    fn new(seed: u64, households: usize) -> Self {
        World {
            rng: ChaCha8Rng::seed_from_u64(seed),
            surnames: WeightedIndex::new(SURNAMES.iter().map(|(_, w)| *w)).expect("weights"),
            male_names: WeightedIndex::new(GIVEN_MALE.iter().map(|(_, w)| *w)).expect("weights"),
            female_names: WeightedIndex::new(GIVEN_FEMALE.iter().map(|(_, w)| *w))
                .expect("weights"),
            used_ids: HashSet::new(),
            households: Vec::new(),
            members: Vec::new(),
            sequence: 0,
            counties: regions::counties(households),
            villages: Vec::new(),
        }
    }

    fn given_name(&mut self, male: bool) -> String {
        if male {
            GIVEN_MALE[self.male_names.sample(&mut self.rng)]
                .0
                .to_string()
        } else {
            GIVEN_FEMALE[self.female_names.sample(&mut self.rng)]
                .0
                .to_string()
        }
    }

    fn name(&mut self, male: bool, surname: Option<&str>) -> String {
        if surname.is_none() && self.rng.random_bool(0.02) {
            let first = MINORITY_FIRST
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("买买提");
            let last = MINORITY_LAST
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("艾力");
            return format!("{first}·{last}");
        }
        let surname = match surname {
            Some(s) => s.to_string(),
            None => SURNAMES[self.surnames.sample(&mut self.rng)].0.to_string(),
        };
        format!("{surname}{}", self.given_name(male))
    }

    /// A fresh valid ID number, unique in this world. Most people were
    /// registered in the county they live in; some elsewhere.
    fn id_for(&mut self, county: usize, birth: NaiveDate, male: bool) -> String {
        let region = if self.rng.random_bool(0.9) {
            self.counties[county].code.clone()
        } else {
            let other = self.rng.random_range(0..self.counties.len());
            self.counties[other].code.clone()
        };
        loop {
            self.sequence = self.sequence.wrapping_add(1);
            let seq = self.rng.random_range(0..500u32);
            let id = make_id(&region, birth, male, seq);
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn birth_between(&mut self, min_age: i64, max_age: i64) -> NaiveDate {
        let days = self.rng.random_range(min_age * 365..=max_age * 365 + 364);
        as_of() - Duration::days(days)
    }

    fn person(
        &mut self,
        county: usize,
        min_age: i64,
        max_age: i64,
        male: bool,
        surname: Option<&str>,
    ) -> Person {
        let birth = self.birth_between(min_age, max_age);
        let name = self.name(male, surname);
        let id = self.id_for(county, birth, male);
        Person {
            name,
            id,
            male,
            birth,
            county,
        }
    }

    fn place_name(&mut self, suffix: &str) -> String {
        let a = PLACE_SYLLABLES
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("新");
        let b = PLACE_SYLLABLES
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("安");
        format!("{a}{b}{suffix}")
    }

    fn build_roster(&mut self, households: usize, economy: &Economy) {
        // Each county has townships, each township villages; codes are fixed
        // per (county, township, village) so households share villages.
        let mut villages: Vec<Vec<(String, String, String, String)>> = Vec::new();
        for ci in 0..self.counties.len() {
            let mut list = Vec::new();
            let townships = 4 + ci % 3;
            let county_code = self.counties[ci].code.clone();
            for t in 1..=townships {
                let township_code = format!("{county_code}{t:03}");
                let township_name = self.place_name("镇");
                for v in 1..=6 {
                    let village_code = format!("{township_code}{:03}", 200 + v);
                    list.push((
                        township_code.clone(),
                        township_name.clone(),
                        village_code,
                        self.place_name("村"),
                    ));
                }
            }
            villages.push(list);
        }
        self.villages = villages
            .iter()
            .map(|list| list.iter().map(|v| v.2.clone()).collect())
            .collect();
        let categories = [
            ("脱贫户", 72u32),
            ("脱贫不稳定户", 10),
            ("边缘易致贫户", 12),
            ("突发严重困难户", 4),
            ("低保户", 2),
        ];
        let category_index = WeightedIndex::new(categories.iter().map(|c| c.1)).expect("weights");
        let risks = [
            "因病",
            "因残",
            "因学",
            "因灾",
            "因意外事故",
            "因务工就业不稳",
            "缺劳动力",
            "其他",
        ];
        let sizes = WeightedIndex::new([10u32, 18, 22, 25, 15, 10]).expect("weights");

        for h in 0..households {
            let county = self.rng.random_range(0..self.counties.len());
            let (_township_code, township_name, village_code, village_name) = villages[county]
                .choose(&mut self.rng)
                .cloned()
                .expect("villages");
            let size = sizes.sample(&mut self.rng) + 1;
            // Income first: poorer households are more often monitoring
            // objects or on 低保, as rosters are.
            let per_capita = (economy.income_median
                * lognormal(&mut self.rng, economy.income_sigma))
            .round() as i64;
            let category = if (per_capita as f64) < economy.line {
                *[
                    ("脱贫户", 20u32),
                    ("脱贫不稳定户", 25),
                    ("边缘易致贫户", 25),
                    ("突发严重困难户", 10),
                    ("低保户", 20),
                ]
                .choose_weighted(&mut self.rng, |c| c.1)
                .map(|c| &c.0)
                .expect("categories")
            } else {
                categories[category_index.sample(&mut self.rng)].0
            };
            let risk_types = if category == "脱贫户" {
                String::new()
            } else {
                let n = self.rng.random_range(1..=2);
                let mut chosen: Vec<&str> =
                    risks.choose_multiple(&mut self.rng, n).copied().collect();
                chosen.sort();
                chosen.join("、")
            };
            let number = format!("{village_code}{:06}", h + 1);
            let hi = self.households.len();
            self.households.push(Household {
                number: number.clone(),
                county,
                township_name,
                village_code,
                village_name,
                category,
                per_capita,
                risk_types,
                size,
            });

            // Head, spouse, children, then an elderly parent or a grandchild.
            let head_male = self.rng.random_bool(0.8);
            let head = self.person(county, 28, 78, head_male, None);
            let head_age = (as_of() - head.birth).num_days() / 365;
            let surname: String = head.name.chars().take(1).collect();
            let minority = head.name.contains('·');
            let mut members = vec![(head, "户主")];
            let mut k = 1;
            if size >= 2 {
                let spouse = self.person(
                    county,
                    (head_age - 6).max(20),
                    head_age + 4,
                    !head_male,
                    None,
                );
                members.push((spouse, "配偶"));
                k += 1;
            }
            while k < size {
                let roll = self.rng.random_range(0..10);
                let m = if roll < 7 || head_age < 45 {
                    let male = self.rng.random_bool(0.5);
                    let max = (head_age - 18).clamp(0, 30);
                    let child = self.person(
                        county,
                        0,
                        max,
                        male,
                        (!minority).then_some(surname.as_str()),
                    );
                    (child, if male { "子" } else { "女" })
                } else if roll < 9 && head_age < 60 {
                    let male = self.rng.random_bool(0.5);
                    let parent = self.person(
                        county,
                        head_age + 20,
                        head_age + 32,
                        male,
                        (male && !minority).then_some(surname.as_str()),
                    );
                    (parent, if male { "父亲" } else { "母亲" })
                } else {
                    let male = self.rng.random_bool(0.5);
                    let grandchild =
                        self.person(county, 0, 12, male, (!minority).then_some(surname.as_str()));
                    (grandchild, if male { "孙子" } else { "孙女" })
                };
                members.push(m);
                k += 1;
            }
            for (i, (person, relation)) in members.into_iter().enumerate() {
                self.members.push(Member {
                    member_id: format!("{number}{:02}", i + 1),
                    person,
                    household: hi,
                    relation,
                });
            }
        }
    }
}

/// An output file in CSV (UTF-8 or GB18030) or XLSX.
enum Sink {
    Csv {
        out: BufWriter<File>,
        gb18030: bool,
    },
    Xlsx {
        workbook: Box<rust_xlsxwriter::Workbook>,
        path: std::path::PathBuf,
        row: u32,
        date_columns: Vec<usize>,
    },
}

impl Sink {
    fn create(
        dir: &Path,
        source: &str,
        encoding: &str,
        xlsx: bool,
        headers: &[String],
        date_columns: &[usize],
    ) -> Result<(Self, String)> {
        if xlsx {
            let mut workbook = rust_xlsxwriter::Workbook::new();
            let sheet = workbook.add_worksheet();
            for (c, h) in headers.iter().enumerate() {
                sheet.write_string(0, c as u16, h)?;
            }
            let name = format!("{source}.xlsx");
            let sink = Sink::Xlsx {
                workbook: Box::new(workbook),
                path: dir.join(&name),
                row: 1,
                date_columns: date_columns.to_vec(),
            };
            return Ok((sink, name));
        }
        let name = format!("{source}.csv");
        let file =
            File::create(dir.join(&name)).with_context(|| format!("cannot create {name}"))?;
        let mut sink = Sink::Csv {
            out: BufWriter::new(file),
            gb18030: encoding == "gb18030",
        };
        sink.row(headers)?;
        Ok((sink, name))
    }

    fn row(&mut self, cells: &[String]) -> Result<()> {
        match self {
            Sink::Csv { out, gb18030 } => {
                let line = csv_line(cells);
                if *gb18030 {
                    let (bytes, _, _) = encoding_rs::GB18030.encode(&line);
                    out.write_all(&bytes)?;
                } else {
                    out.write_all(line.as_bytes())?;
                }
            }
            Sink::Xlsx {
                workbook,
                row,
                date_columns,
                ..
            } => {
                let sheet = workbook.worksheet_from_index(0)?;
                let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
                for (c, cell) in cells.iter().enumerate() {
                    // Dates are stored the way Excel stores them: serial numbers.
                    let serial = date_columns
                        .contains(&c)
                        .then(|| crate::identity::parse_date(cell, &[]).ok())
                        .flatten()
                        .map(|d| {
                            (d - NaiveDate::from_ymd_opt(1899, 12, 30).expect("epoch")).num_days()
                                as f64
                        });
                    match serial {
                        Some(s) => {
                            sheet.write_number_with_format(*row, c as u16, s, &date_format)?
                        }
                        None => sheet.write_string(*row, c as u16, cell)?,
                    };
                }
                *row += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Csv { mut out, .. } => out.flush()?,
            Sink::Xlsx {
                mut workbook, path, ..
            } => workbook.save(&path)?,
        }
        Ok(())
    }
}

/// One CSV line: fields quoted only when they hold a comma, quote or newline.
fn csv_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(cell);
        }
    }
    line.push('\n');
    line
}

fn encoding_for(options: &Options, source: &str) -> Result<String> {
    let mut chosen = "utf-8".to_string();
    for part in options.encoding.split(',') {
        let (target, enc) = match part.split_once(':') {
            Some((s, e)) => (Some(s.trim()), e.trim()),
            None => (None, part.trim()),
        };
        let enc = enc.to_lowercase();
        if !["utf-8", "utf8", "gb18030"].contains(&enc.as_str()) {
            bail!("--encoding {enc}: use utf-8 or gb18030");
        }
        if target.is_none() || target == Some(source) {
            chosen = if enc == "gb18030" {
                enc
            } else {
                "utf-8".into()
            };
        }
    }
    Ok(chosen)
}

fn date_text(rng: &mut impl Rng, d: NaiveDate) -> String {
    match rng.random_range(0..10) {
        0..=5 => d.format("%Y-%m-%d").to_string(),
        6 => format!("{}/{}/{}", d.year(), d.month(), d.day()),
        7 => d.format("%Y%m%d").to_string(),
        8 => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        _ => d.format("%Y-%m-%d 00:00:00").to_string(),
    }
}

fn amount_text(rng: &mut impl Rng, fen: i64) -> String {
    let yuan = format!("{}.{:02}", fen / 100, fen % 100);
    match rng.random_range(0..10) {
        0 => {
            let whole = (fen / 100).to_string();
            let mut grouped = String::new();
            for (i, c) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            format!("{grouped}.{:02}", fen % 100)
        }
        1 => format!("{yuan}元"),
        _ => yuan,
    }
}

/// A log-normal factor with median 1 and the given sigma (Box–Muller).
fn lognormal(rng: &mut impl Rng, sigma: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (sigma * z).exp()
}

/// Who a department record is about.
struct Subject {
    person: Person,
    /// True ID when the person is on the roster.
    truth: Option<String>,
    /// The village the person lives in (12 digits).
    village_code: String,
}

impl World {
    fn random_village(&mut self, county: usize) -> String {
        self.villages[county]
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_else(|| format!("{}001001", self.counties[county].code))
    }
}

/// Someone not on the roster: a namesake of a roster person in the age
/// range, or a stranger. Everyone lives in a village: a namesake in the
/// roster person's own village a fifth of the time (rural villages are
/// often one clan, so namesakes cluster), else anywhere in the county; a
/// stranger anywhere in theirs.
fn other_subject(
    world: &mut World,
    eligible: &[usize],
    namesake: bool,
    min_age: i64,
    max_age: i64,
) -> Subject {
    if namesake {
        let pick = *eligible.choose(&mut world.rng).expect("eligible members");
        let home = world.households[world.members[pick].household]
            .village_code
            .clone();
        let template = world.members[pick].person.clone();
        let birth = world.birth_between(min_age, max_age);
        let id = world.id_for(template.county, birth, template.male);
        let village_code = if world.rng.random_bool(0.2) {
            home
        } else {
            world.random_village(template.county)
        };
        let person = Person {
            name: template.name,
            id,
            male: template.male,
            birth,
            county: template.county,
        };
        return Subject {
            person,
            truth: None,
            village_code,
        };
    }
    let county = world.rng.random_range(0..world.counties.len());
    let male = world.rng.random_bool(0.5);
    let person = world.person(county, min_age, max_age, male, None);
    let village_code = world.random_village(county);
    Subject {
        person,
        truth: None,
        village_code,
    }
}

/// The region code a department writes for the subject. Departments differ
/// in how fine it is: relief is applied for through the village committee
/// (village code), schools record their township (`…000`), medical
/// insurance the county that pools it, social insurance mostly the county. One record in twenty of a
/// roster person names another village of the county (the person moved, or
/// the clerk took the place of residence).
fn region_as_written(
    world: &mut World,
    habits: &Habits,
    source: &str,
    subject: &Subject,
) -> String {
    let county = world.counties[subject.person.county].code.clone();
    let (village_share, township_share) = habits.region_mix(source);
    let mut village = subject.village_code.clone();
    if subject.truth.is_some() && world.rng.random_bool(0.05) {
        village = world.random_village(subject.person.county);
    }
    let roll: f64 = world.rng.random();
    if roll < village_share {
        village
    } else if roll < village_share + township_share {
        format!("{}000", village.get(..9).unwrap_or(&county))
    } else {
        county
    }
}

/// The subject's name and ID as the department wrote them, and the dirt.
fn as_written(
    world: &mut World,
    habits: &Habits,
    subject: &Subject,
) -> (String, String, Vec<&'static str>) {
    let mut name = subject.person.name.clone();
    let mut id = subject.person.id.clone();
    let mut kinds = Vec::new();
    let dirty_share = if subject.truth.is_some() { 0.4 } else { 0.3 };
    // A dirty record's name is damaged when `roll` is at least this: half
    // of dirty records by default; `name_dirt` scales that share, and past
    // every dirty record it reaches into the clean ones.
    let name_share = 0.5 * dirty_share * habits.name_dirt;
    let name_from = 1.0 - (name_share / dirty_share).min(1.0);
    let mut name_damaged = false;
    if world.rng.random_bool(dirty_share) {
        let roll: f64 = world.rng.random();
        if roll < 0.8 {
            let kind = ID_KINDS.choose(&mut world.rng).copied().expect("kinds");
            let (d, applied) = dirty_id(&mut world.rng, &id, kind);
            id = d;
            kinds.push(applied);
        }
        name_damaged = roll >= name_from;
    } else if name_share > dirty_share {
        let beyond = (name_share - dirty_share) / (1.0 - dirty_share);
        name_damaged = world.rng.random_bool(beyond.min(1.0));
    }
    if name_damaged {
        let kind = name_kind(&mut world.rng, habits);
        let (d, applied) = dirty_name(&mut world.rng, &name, kind);
        name = d;
        kinds.push(applied);
    }
    (name, id, kinds)
}

/// A kind of name damage, drawn by the habits' weights.
fn name_kind(rng: &mut ChaCha8Rng, habits: &Habits) -> &'static str {
    if habits.even_name_kinds() {
        // The draw the generator always made, so default worlds' files
        // do not change.
        return NAME_KINDS.choose(rng).copied().expect("kinds");
    }
    match WeightedIndex::new(habits.name_kinds) {
        Ok(w) => NAME_KINDS[w.sample(rng)],
        Err(_) => NAME_KINDS.choose(rng).copied().expect("kinds"),
    }
}

fn age(p: &Person) -> i64 {
    (as_of() - p.birth).num_days() / 365
}

fn eligible(world: &World, min_age: i64, max_age: i64) -> Vec<usize> {
    let list: Vec<usize> = (0..world.members.len())
        .filter(|&i| (min_age..=max_age).contains(&age(&world.members[i].person)))
        .collect();
    if list.is_empty() {
        (0..world.members.len()).collect()
    } else {
        list
    }
}

/// The birth date as written, or blank for the given share of records.
fn birth_text(rng: &mut impl Rng, person: &Person, present: f64) -> String {
    if rng.random_bool(present) {
        date_text(rng, person.birth)
    } else {
        String::new()
    }
}

fn gender_text(rng: &mut impl Rng, male: bool) -> String {
    match (rng.random_range(0..10), male) {
        (0, true) => "1".into(),
        (0, false) => "2".into(),
        (_, true) => "男".into(),
        (_, false) => "女".into(),
    }
}

/// The schema of a source, as shipped: the generator writes what it says
/// departments write.
fn schema_of(source: &str) -> Result<SourceSchema> {
    let text = match source {
        "roster" => include_str!("../../schemas/roster.toml"),
        "civil_affairs" => include_str!("../../schemas/civil_affairs.toml"),
        "health" => include_str!("../../schemas/health.toml"),
        "education" => include_str!("../../schemas/education.toml"),
        "social_insurance" => include_str!("../../schemas/social_insurance.toml"),
        other => bail!("no schema for source '{other}'"),
    };
    SourceSchema::parse(text).with_context(|| format!("schemas/{source}.toml"))
}

/// A file in the order and with the headers of its schema: each row is
/// given by field name, and fields a row does not name stay empty.
struct Columns {
    names: Vec<String>,
    headers: Vec<String>,
    dates: Vec<usize>,
}

impl Columns {
    fn of(schema: &SourceSchema) -> Columns {
        Columns {
            names: schema.fields.iter().map(|f| f.name.clone()).collect(),
            headers: schema
                .fields
                .iter()
                .map(|f| f.headers.first().cloned().unwrap_or_else(|| f.name.clone()))
                .collect(),
            dates: schema
                .fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind == FieldType::Date)
                .map(|(i, _)| i)
                .collect(),
        }
    }

    fn row(&self, cells: &BTreeMap<&str, String>) -> Vec<String> {
        self.names
            .iter()
            .map(|n| cells.get(n.as_str()).cloned().unwrap_or_default())
            .collect()
    }
}

/// Write the roster, the department extracts and the truth files to `out`.
/// Returns (file, rows) for each file written.
pub fn write(out: &Path, options: &Options) -> Result<Vec<(String, usize)>> {
    if options.households == 0 {
        bail!("--households must be at least 1");
    }
    for s in options.xlsx_sources.iter().chain(&options.only) {
        if !SOURCES.contains(&s.as_str()) && s != "roster" {
            bail!(
                "unknown source '{s}' (sources: roster, {})",
                SOURCES.join(", ")
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut world = World::new(options.seed, options.households);
    world.build_roster(options.households, &options.economy);
    let mut year = year::simulate(&mut world, &options.economy, as_of());
    // An extract asked to be larger than the year makes it gets routine
    // records (visits, contributions…) until its roster share is the usual.
    for source in SOURCES {
        if let Some(rows) = options.rows.get(*source) {
            let wanted = (*rows as f64 * ROSTER_SHARE).round() as usize;
            let have = year.count(source);
            if wanted > have {
                year.add_routine(&mut world, source, wanted - have, as_of());
            }
        }
    }
    let truth = year.judge(&options.economy);
    let mut written = Vec::new();
    written.push(write_roster(&world, &year, out, options)?);
    for source in SOURCES {
        if !options.only.is_empty() && !options.only.iter().any(|s| s == source) {
            continue;
        }
        written.extend(write_source(&mut world, &year, out, options, source)?);
    }
    written.push(write_household_truth(&world, &truth, out)?);
    Ok(written)
}

/// Records about roster people, out of all records of an extract: the rest
/// are about namesakes who are not on the roster (`--world
/// namesake_share`) and about strangers.
const ROSTER_SHARE: f64 = 0.65;

fn write_roster(
    world: &World,
    year: &year::Year,
    out: &Path,
    options: &Options,
) -> Result<(String, usize)> {
    let schema = schema_of("roster")?;
    let columns = Columns::of(&schema);
    let encoding = encoding_for(options, "roster")?;
    let xlsx = options.xlsx_sources.iter().any(|s| s == "roster");
    let (mut sink, name) = Sink::create(
        out,
        "roster",
        &encoding,
        xlsx,
        &columns.headers,
        &columns.dates,
    )?;
    for m in &world.members {
        let h = &world.households[m.household];
        let county = &world.counties[h.county];
        let income = year.roster_income[m.household];
        let cells: BTreeMap<&str, String> = [
            ("household_number", h.number.clone()),
            ("member_id", m.member_id.clone()),
            ("province", county.province.clone()),
            ("prefecture", county.prefecture.clone()),
            ("county_name", county.name.clone()),
            ("township_name", h.township_name.clone()),
            ("village_name", h.village_name.clone()),
            ("region_code", h.village_code.clone()),
            ("category", h.category.into()),
            ("household_size", h.size.to_string()),
            ("annual_income", income.to_string()),
            ("per_capita_income", (income / h.size as i64).to_string()),
            ("risk_types", h.risk_types.clone()),
            ("name", m.person.name.clone()),
            ("id_number", m.person.id.clone()),
            ("gender", if m.person.male { "男" } else { "女" }.into()),
            ("birth_date", m.person.birth.format("%Y-%m-%d").to_string()),
            ("relation", m.relation.into()),
        ]
        .into_iter()
        .collect();
        sink.row(&columns.row(&cells))?;
    }
    sink.finish()?;
    Ok((name, world.members.len()))
}

/// `truth_households.csv`: what each household's year really was.
fn write_household_truth(
    world: &World,
    truth: &[year::HouseholdTruth],
    out: &Path,
) -> Result<(String, usize)> {
    let name = "truth_households.csv".to_string();
    let mut w = csv::Writer::from_path(out.join(&name))?;
    w.write_record([
        "household_id",
        "period",
        "per_capita_before",
        "per_capita_after",
        "status",
        "cause",
        "records",
        "observable",
    ])?;
    let period = as_of().year().to_string();
    for (h, t) in world.households.iter().zip(truth) {
        w.write_record([
            h.number.as_str(),
            period.as_str(),
            &format!("{:.2}", t.before),
            &format!("{:.2}", t.after),
            t.status.as_str(),
            t.cause,
            &t.records.to_string(),
            if t.observable { "1" } else { "0" },
        ])?;
    }
    w.flush()?;
    Ok((name, truth.len()))
}

/// Who a record is about, and what it says.
enum About<'a> {
    /// A roster member, with what the year brought them.
    Roster(usize, &'a Event),
    /// Someone not on the roster (a namesake or a stranger).
    Other(bool),
}

/// One department extract and its truth file. Records about roster
/// people are the year's events; the others are made like them.
fn write_source(
    world: &mut World,
    year: &year::Year,
    out: &Path,
    options: &Options,
    source: &str,
) -> Result<Vec<(String, usize)>> {
    let (min_age, max_age) = match source {
        "education" => (6, 22),
        "social_insurance" => (16, 60),
        _ => (0, 95),
    };
    let schema = schema_of(source)?;
    let columns = Columns::of(&schema);
    let encoding = encoding_for(options, source)?;
    let xlsx = options.xlsx_sources.iter().any(|s| s == source);
    let (mut sink, name) = Sink::create(
        out,
        source,
        &encoding,
        xlsx,
        &columns.headers,
        &columns.dates,
    )?;
    let truth_name = format!("truth_{source}.csv");
    let mut truth = csv::Writer::from_path(out.join(&truth_name))?;
    truth.write_record(["record_key", "true_id_number", "dirt"])?;

    let mine: Vec<(usize, &Event)> = year
        .events
        .iter()
        .filter(|(_, e)| e.source() == source)
        .map(|(m, e)| (*m, e))
        .collect();
    let others = match options.rows.get(source) {
        Some(rows) => rows.saturating_sub(mine.len()),
        None => (mine.len() as f64 * (1.0 - ROSTER_SHARE) / ROSTER_SHARE).round() as usize,
    };
    let rows = mine.len() + others;
    // Roster and other records interleaved at random, in a stable order.
    let mut order: Vec<About> = mine.iter().map(|(m, e)| About::Roster(*m, e)).collect();
    // Of the records about people not on the roster, the share about
    // namesakes of roster people.
    let namesakes = (options.economy.namesake_share / (1.0 - ROSTER_SHARE)).clamp(0.0, 1.0);
    for _ in 0..others {
        let namesake = world.rng.random_bool(namesakes);
        order.push(About::Other(namesake));
    }
    order.shuffle(&mut world.rng);
    let pool = eligible(world, min_age, max_age);
    let prefix = match source {
        "civil_affairs" => "MZ",
        "health" => "YB",
        "education" => "G",
        _ => "RS",
    };
    for (i, about) in order.iter().enumerate() {
        let subject = match about {
            About::Roster(m, _) => {
                let member = &world.members[*m];
                Subject {
                    person: member.person.clone(),
                    truth: Some(member.person.id.clone()),
                    village_code: world.households[member.household].village_code.clone(),
                }
            }
            About::Other(namesake) => other_subject(world, &pool, *namesake, min_age, max_age),
        };
        let (name_text, mut id_text, mut kinds) = as_written(world, &options.habits, &subject);
        // A department that often leaves the number out, for anyone alike.
        let no_id = options.economy.no_id_share;
        if no_id > 0.0 && !id_text.is_empty() && world.rng.random_bool(no_id.min(1.0)) {
            id_text.clear();
            kinds.retain(|k| !k.starts_with("id_"));
            kinds.push("id_missing");
        }
        let county_code = world.counties[subject.person.county].code.clone();
        let key = format!("{prefix}{county_code}{:09}", i + 1);
        let county_name = world.counties[subject.person.county].name.clone();
        let region = region_as_written(world, &options.habits, source, &subject);
        let event = match about {
            About::Roster(_, e) => (*e).clone(),
            About::Other(_) => routine_event(&mut world.rng, source, &subject.person),
        };
        let rng = &mut world.rng;
        let mut cells: BTreeMap<&str, String> = BTreeMap::new();
        cells.insert(schema.key.as_str(), key.clone());
        cells.insert("name", name_text);
        cells.insert("id_number", id_text);
        cells.insert("gender", gender_text(rng, subject.person.male));
        cells.insert("region_code", region);
        let birth_share = options.habits.birth_share(source);
        cells.insert("birth_date", birth_text(rng, &subject.person, birth_share));
        match event {
            Event::Health {
                visit,
                diagnosis,
                serious,
                admitted,
                total,
                self_paid,
            } => {
                let settled = admitted + Duration::days(rng.random_range(0..20));
                cells.insert("visit_type", visit.into());
                cells.insert("admission_date", date_text(rng, admitted));
                cells.insert("settlement_date", date_text(rng, settled.min(as_of())));
                cells.insert("diagnosis", diagnosis.into());
                cells.insert("serious_illness", if serious { "是" } else { "否" }.into());
                cells.insert("total_cost", amount_text(rng, total));
                cells.insert("fund_paid", amount_text(rng, total - self_paid));
                cells.insert("self_paid", amount_text(rng, self_paid));
            }
            Event::Civil {
                kind,
                action,
                date,
                amount,
                grade,
            } => {
                cells.insert("assistance_type", kind.into());
                cells.insert("action", action.into());
                cells.insert("event_date", date_text(rng, date));
                cells.insert(
                    "amount",
                    amount.map(|a| amount_text(rng, a)).unwrap_or_default(),
                );
                cells.insert("disability_grade", grade.unwrap_or_default().into());
            }
            Event::School { status, date } => {
                let a = age(&subject.person);
                let (stage, grade) = match a {
                    ..=11 => ("小学", format!("{}年级", (a - 5).clamp(1, 6))),
                    12..=14 => ("初中", format!("初{}", a - 11)),
                    15..=17 => (
                        if rng.random_bool(0.7) {
                            "高中"
                        } else {
                            "中职"
                        },
                        format!("高{}", a - 14),
                    ),
                    _ => ("高校", format!("大{}", (a - 17).clamp(1, 4))),
                };
                let school = format!(
                    "{county_name}{}",
                    match stage {
                        "小学" => "第一小学",
                        "初中" => "第二中学",
                        "高中" => "第一中学",
                        "中职" => "职业技术学校",
                        _ => "职业技术学院",
                    }
                );
                cells.insert("school", school);
                cells.insert("stage", stage.into());
                cells.insert("grade", grade);
                cells.insert("status", status.into());
                cells.insert("status_date", date_text(rng, date));
                if rng.random_bool(0.3) {
                    let fen = rng.random_range(50_000..300_000);
                    cells.insert("aid_amount", amount_text(rng, fen));
                }
                // Pupils' records carry the birth date as the habits say
                // (by default always); drawn again, as the defaults were.
                cells.insert("birth_date", birth_text(rng, &subject.person, birth_share));
            }
            Event::Social { event, date, base } => {
                let employer = format!(
                    "{county_name}{}",
                    [
                        "建筑工程有限公司",
                        "农业合作社",
                        "劳务派遣有限公司",
                        "食品加工厂"
                    ]
                    .choose(rng)
                    .copied()
                    .unwrap_or("公司")
                );
                cells.insert("event_type", event.into());
                cells.insert("event_date", date_text(rng, date));
                cells.insert("employer", employer);
                cells.insert("contribution_base", amount_text(rng, base));
            }
        }
        sink.row(&columns.row(&cells))?;
        truth.write_record([
            key.as_str(),
            subject.truth.as_deref().unwrap_or(""),
            &kinds.join(";"),
        ])?;
    }
    sink.finish()?;
    truth.flush()?;
    Ok(vec![(name, rows), (truth_name, rows)])
}

/// A record about someone not on the roster, made like the ones about
/// roster people.
fn routine_event(rng: &mut ChaCha8Rng, source: &str, person: &Person) -> Event {
    let date = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
        + Duration::days(rng.random_range(0..320));
    match source {
        "civil_affairs" => {
            let (kind, action, amount, grade) = match rng.random_range(0..20) {
                0..=6 => (
                    "低保",
                    if rng.random_bool(0.2) {
                        "取消"
                    } else {
                        "新增"
                    },
                    Some(rng.random_range(20_000..90_000)),
                    None,
                ),
                7..=8 => ("特困", "新增", Some(rng.random_range(40_000..90_000)), None),
                9..=13 => (
                    "临时救助",
                    "发放",
                    Some(rng.random_range(50_000..500_000)),
                    None,
                ),
                14..=16 => (
                    "残疾人两项补贴",
                    "新增",
                    Some(rng.random_range(5_000..20_000)),
                    ["一级", "二级", "三级", "四级"].choose(rng).copied(),
                ),
                _ => ("死亡登记", "登记", None, None),
            };
            let amount = if action == "取消" { None } else { amount };
            Event::Civil {
                kind,
                action,
                date,
                amount,
                grade,
            }
        }
        "health" => {
            let inpatient = rng.random_bool(0.3);
            let (diagnosis, serious, _) =
                *STAY_MIX.choose_weighted(rng, |d| d.2).expect("diagnoses");
            let median =
                if inpatient { 800_000.0 } else { 15_000.0 } * if serious { 4.0 } else { 1.0 };
            let total = (median * lognormal(rng, 0.8)) as i64;
            let self_paid = (total as f64 * rng.random_range(0.15..0.45)) as i64;
            Event::Health {
                visit: if inpatient { "住院" } else { "门诊" },
                diagnosis,
                serious,
                admitted: date,
                total,
                self_paid,
            }
        }
        "education" => Event::School {
            status: [
                "在读", "在读", "在读", "在读", "转学", "毕业", "休学", "辍学",
            ]
            .choose(rng)
            .expect("statuses"),
            date,
        },
        _ => {
            let event = *["失业登记", "停止缴费", "就业登记", "参保缴费", "参保缴费"]
                .choose(rng)
                .expect("events");
            let _ = person;
            Event::Social {
                event,
                date,
                base: rng.random_range(250_000..800_000),
            }
        }
    }
}

/// Diagnoses of records about people not on the roster: (name, serious, weight).
const STAY_MIX: &[(&str, bool, u32)] = &[
    ("急性上呼吸道感染", false, 25),
    ("高血压", false, 20),
    ("2型糖尿病", false, 15),
    ("腰椎间盘突出", false, 8),
    ("骨折", false, 6),
    ("冠心病", false, 8),
    ("慢性阻塞性肺病", false, 8),
    ("脑梗死", true, 2),
    ("恶性肿瘤", true, 2),
    ("慢性肾衰竭(尿毒症期)", true, 1),
    ("白血病", true, 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let options = Options {
            households: 30,
            ..Options::default()
        };
        write(a.path(), &options).unwrap();
        write(b.path(), &options).unwrap();
        for f in ["roster.csv", "health.csv", "truth_health.csv"] {
            assert_eq!(
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn truth_shares_are_realistic() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            households: 2000,
            ..Options::default()
        };
        write(dir.path(), &options).unwrap();
        let mut reader = csv::Reader::from_path(dir.path().join("truth_health.csv")).unwrap();
        let (mut total, mut on_roster, mut dirty) = (0, 0, 0);
        for r in reader.records() {
            let r = r.unwrap();
            total += 1;
            if !r[1].is_empty() {
                on_roster += 1;
                if !r[2].is_empty() {
                    dirty += 1;
                }
            }
        }
        let roster_share = on_roster as f64 / total as f64;
        assert!((0.6..0.7).contains(&roster_share), "{roster_share}");
        let dirty_share = dirty as f64 / on_roster as f64;
        assert!(dirty_share >= 0.33, "{dirty_share}");
    }

    /// A world's habits show in the files: every health record names only
    /// the county and has no birth date, and names are damaged as often,
    /// and in the kinds, the world asks for.
    #[test]
    fn a_worlds_habits_show_in_the_extracts() {
        let read = |world: &str, source: &str| {
            let dir = tempfile::tempdir().unwrap();
            let (economy, habits) = Economy::parse(world).unwrap();
            let options = Options {
                households: 400,
                only: vec![source.into()],
                economy,
                habits,
                ..Options::default()
            };
            write(dir.path(), &options).unwrap();
            let columns = Columns::of(&schema_of(source).unwrap());
            let mut reader =
                csv::Reader::from_path(dir.path().join(format!("{source}.csv"))).unwrap();
            let header_row = reader.headers().unwrap().clone();
            let at = |n: &str| {
                let i = columns.names.iter().position(|c| c == n).unwrap();
                let header = &columns.headers[i];
                header_row.iter().position(|h| h == header).unwrap()
            };
            let (region, birth) = (at("region_code"), at("birth_date"));
            let rows: Vec<(String, String)> = reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[region].to_string(), r[birth].to_string())
                })
                .collect();
            let dirt: Vec<String> =
                csv::Reader::from_path(dir.path().join(format!("truth_{source}.csv")))
                    .unwrap()
                    .records()
                    .map(|r| r.unwrap()[2].to_string())
                    .collect();
            (rows, dirt)
        };
        let named = |dirt: &[String], kind: &str| {
            dirt.iter().filter(|d| d.contains(kind)).count() as f64 / dirt.len() as f64
        };

        let (rows, dirt) = read("", "civil_affairs");
        assert!(rows.iter().filter(|(r, _)| r.len() == 12).count() * 2 > rows.len());
        assert!(rows.iter().any(|(_, b)| !b.is_empty()));
        let usual = named(&dirt, "name_");
        assert!((0.1..0.4).contains(&usual), "{usual}");

        let (rows, dirt) = read("region=county,birth_share=0,name_dirt=0", "civil_affairs");
        assert!(rows.iter().all(|(r, _)| r.len() == 6), "only county codes");
        assert!(rows.iter().all(|(_, b)| b.is_empty()), "no birth dates");
        assert_eq!(named(&dirt, "name_"), 0.0);

        let (rows, _) = read("region=village,birth_share.education=0.5", "education");
        assert!(
            rows.iter()
                .all(|(r, _)| r.len() == 12 && !r.ends_with("000"))
        );
        let with_birth = rows.iter().filter(|(_, b)| !b.is_empty()).count() as f64;
        let share = with_birth / rows.len() as f64;
        assert!((0.4..0.6).contains(&share), "{share}");

        let (_, dirt) = read(
            "name_dirt=3,name_homophone=0,name_lookalike=0,name_traditional=0,name_spaces=0,name_separator=0",
            "civil_affairs",
        );
        let damaged = named(&dirt, "name_");
        assert!(damaged > 2.0 * usual, "{damaged} against {usual}");
        assert!(named(&dirt, "name_dropped") > 0.0);
        // A name too short to drop a character gets a stray space instead.
        let others = named(&dirt, "name_homophone") + named(&dirt, "name_lookalike");
        assert_eq!(others, 0.0);
    }

    /// How fine a record's region code is must not give away whether its
    /// subject is on the roster: namesakes and strangers live in villages
    /// too, and a namesake sometimes in the roster person's own.
    #[test]
    fn region_codes_do_not_reveal_who_is_on_the_roster() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            households: 2000,
            only: vec!["civil_affairs".into()],
            ..Options::default()
        };
        write(dir.path(), &options).unwrap();
        let truth: Vec<bool> = csv::Reader::from_path(dir.path().join("truth_civil_affairs.csv"))
            .unwrap()
            .records()
            .map(|r| !r.unwrap()[1].is_empty())
            .collect();
        let mut village = [(0, 0), (0, 0)];
        let mut reader = csv::Reader::from_path(dir.path().join("civil_affairs.csv")).unwrap();
        for (r, on_roster) in reader.records().zip(&truth) {
            let r = r.unwrap();
            let region = &r[r.len() - 1];
            let slot = &mut village[usize::from(*on_roster)];
            slot.0 += usize::from(region.len() == 12);
            slot.1 += 1;
        }
        let share = |(v, n): (usize, usize)| v as f64 / n as f64;
        let (off, on) = (share(village[0]), share(village[1]));
        assert!(
            (on - off).abs() < 0.1,
            "village codes: on roster {on}, off {off}"
        );
        assert!(on > 0.8, "{on}");
    }

    #[test]
    fn namesakes_occur_in_the_same_county() {
        let mut world = World::new(1, 100);
        world.build_roster(2000, &Economy::default());
        let mut seen = HashSet::new();
        let mut namesakes = 0;
        for m in &world.members {
            if !seen.insert((m.person.name.clone(), m.person.county)) {
                namesakes += 1;
            }
        }
        assert!(namesakes > 50, "{namesakes}");
    }
}
