//! Synthetic extracts with ground truth.
//!
//! `write` produces a roster of households and four department extracts
//! whose rows belong to roster people (often with damaged names and ID
//! numbers), to namesakes of roster people who are not on the roster, or to
//! strangers; `truth_<source>.csv` records, for every record key, the true
//! roster person's ID number (empty for non-roster people) and the dirt
//! applied. Rows are written as they are made, so memory stays small for
//! benchmark-sized extracts.

pub mod dirt;
pub mod names;
pub mod regions;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, Duration, NaiveDate};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use dirt::{ID_KINDS, NAME_KINDS, dirty_id, dirty_name, make_id};
use names::*;
use regions::{County, PLACE_SYLLABLES};

pub const SOURCES: &[&str] = &["civil_affairs", "health", "education", "social_insurance"];

/// Rows per household for each department extract, by default.
fn default_rows(source: &str, households: usize) -> usize {
    let per_household = match source {
        "health" => 1.4,
        "education" => 0.35,
        // Relief events (new 低保/特困 cases, temporary relief, deaths) are
        // rarer than hospital bills; each of them is a warning signal.
        "civil_affairs" => 0.12,
        _ => 0.3,
    };
    ((households as f64) * per_household).round().max(1.0) as usize
}

#[derive(Debug, Clone)]
pub struct Options {
    pub households: usize,
    pub seed: u64,
    /// "utf-8", "gb18030", or per source "health:gb18030,civil_affairs:utf-8".
    pub encoding: String,
    /// Sources written as XLSX instead of CSV.
    pub xlsx_sources: Vec<String>,
    /// Row counts overriding the defaults, per source.
    pub rows: BTreeMap<String, usize>,
    /// Write only these department sources (all when empty); the roster is always written.
    pub only: Vec<String>,
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
        }
    }
}

/// The reference date the synthetic data is "extracted" on.
fn as_of() -> NaiveDate {
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

struct World {
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

    fn build_roster(&mut self, households: usize) {
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
            ("脱贫户", 60u32),
            ("脱贫不稳定户", 15),
            ("边缘易致贫户", 15),
            ("突发严重困难户", 6),
            ("低保户", 4),
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
            let category = categories[category_index.sample(&mut self.rng)].0;
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
            let per_capita = self.rng.random_range(5_000..22_000);
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
        headers: &[&str],
        date_columns: &[usize],
    ) -> Result<(Self, String)> {
        if xlsx {
            let mut workbook = rust_xlsxwriter::Workbook::new();
            let sheet = workbook.add_worksheet();
            for (c, h) in headers.iter().enumerate() {
                sheet.write_string(0, c as u16, *h)?;
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
        sink.row(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
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

/// Pick a subject: a roster person in the age range (65 %), a namesake of
/// one who is not on the roster (10 %), or a stranger (25 %). Everyone lives
/// in a village: roster people in their household's; a namesake in the same
/// village a fifth of the time (rural villages are often one clan, so
/// namesakes cluster), else anywhere in the county; a stranger anywhere in
/// theirs.
fn subject(world: &mut World, eligible: &[usize], min_age: i64, max_age: i64) -> Subject {
    let roll: f64 = world.rng.random();
    let pick = *eligible.choose(&mut world.rng).expect("eligible members");
    let home = world.households[world.members[pick].household]
        .village_code
        .clone();
    if roll < 0.65 {
        return Subject {
            person: world.members[pick].person.clone(),
            truth: Some(world.members[pick].person.id.clone()),
            village_code: home,
        };
    }
    if roll < 0.75 {
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
fn region_as_written(world: &mut World, source: &str, subject: &Subject) -> String {
    let county = world.counties[subject.person.county].code.clone();
    let (village_share, township_share) = match source {
        "civil_affairs" => (0.9, 0.0),
        "health" => (0.0, 0.0),
        "education" => (0.0, 0.7),
        _ => (0.2, 0.0),
    };
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
fn as_written(world: &mut World, subject: &Subject) -> (String, String, Vec<&'static str>) {
    let mut name = subject.person.name.clone();
    let mut id = subject.person.id.clone();
    let mut kinds = Vec::new();
    let dirty_share = if subject.truth.is_some() { 0.4 } else { 0.3 };
    if world.rng.random_bool(dirty_share) {
        let roll: f64 = world.rng.random();
        if roll < 0.8 {
            let kind = ID_KINDS.choose(&mut world.rng).copied().expect("kinds");
            let (d, applied) = dirty_id(&mut world.rng, &id, kind);
            id = d;
            kinds.push(applied);
        }
        if roll >= 0.5 {
            let kind = NAME_KINDS.choose(&mut world.rng).copied().expect("kinds");
            let (d, applied) = dirty_name(&mut world.rng, &name, kind);
            name = d;
            kinds.push(applied);
        }
    }
    (name, id, kinds)
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
    world.build_roster(options.households);
    let mut written = Vec::new();
    written.push(write_roster(&world, out, options)?);
    for source in SOURCES {
        if !options.only.is_empty() && !options.only.iter().any(|s| s == source) {
            continue;
        }
        let rows = options
            .rows
            .get(*source)
            .copied()
            .unwrap_or_else(|| default_rows(source, options.households));
        written.extend(write_source(&mut world, out, options, source, rows)?);
    }
    Ok(written)
}

fn write_roster(world: &World, out: &Path, options: &Options) -> Result<(String, usize)> {
    let headers = [
        "户编号",
        "成员编号",
        "省",
        "市",
        "县",
        "乡镇",
        "村",
        "村(社区)代码",
        "户类型",
        "家庭人口数",
        "家庭年纯收入(元)",
        "人均纯收入(元)",
        "风险类型",
        "姓名",
        "证件号码",
        "性别",
        "出生日期",
        "与户主关系",
    ];
    let encoding = encoding_for(options, "roster")?;
    let xlsx = options.xlsx_sources.iter().any(|s| s == "roster");
    let (mut sink, name) = Sink::create(out, "roster", &encoding, xlsx, &headers, &[16])?;
    for m in &world.members {
        let h = &world.households[m.household];
        let county = &world.counties[h.county];
        sink.row(&[
            h.number.clone(),
            m.member_id.clone(),
            county.province.clone(),
            county.prefecture.clone(),
            county.name.clone(),
            h.township_name.clone(),
            h.village_name.clone(),
            h.village_code.clone(),
            h.category.into(),
            h.size.to_string(),
            (h.per_capita * h.size as i64).to_string(),
            h.per_capita.to_string(),
            h.risk_types.clone(),
            m.person.name.clone(),
            m.person.id.clone(),
            if m.person.male {
                "男".into()
            } else {
                "女".into()
            },
            m.person.birth.format("%Y-%m-%d").to_string(),
            m.relation.into(),
        ])?;
    }
    sink.finish()?;
    Ok((name, world.members.len()))
}

/// One department extract and its truth file.
fn write_source(
    world: &mut World,
    out: &Path,
    options: &Options,
    source: &str,
    rows: usize,
) -> Result<Vec<(String, usize)>> {
    let (headers, date_columns, min_age, max_age): (&[&str], &[usize], i64, i64) = match source {
        "civil_affairs" => (
            &[
                "业务编号",
                "姓名",
                "身份证号",
                "性别",
                "出生日期",
                "救助类型",
                "业务类型",
                "发生日期",
                "金额(元)",
                "残疾等级",
                "行政区划代码",
            ],
            &[4, 7],
            0,
            95,
        ),
        "health" => (
            &[
                "结算流水号",
                "姓名",
                "证件号码",
                "性别",
                "出生日期",
                "就诊类型",
                "入院日期",
                "结算日期",
                "诊断名称",
                "重大疾病",
                "医疗总费用",
                "基金支付",
                "个人自付",
                "参保地区划",
            ],
            &[4, 6, 7],
            0,
            95,
        ),
        "education" => (
            &[
                "学籍号",
                "学生姓名",
                "身份证号",
                "性别",
                "出生日期",
                "学校名称",
                "学段",
                "年级",
                "学籍状态",
                "状态变动日期",
                "资助金额",
                "学校所在地区划",
            ],
            &[4, 9],
            6,
            22,
        ),
        _ => (
            &[
                "业务流水号",
                "姓名",
                "公民身份号码",
                "性别",
                "出生日期",
                "事件类型",
                "事件日期",
                "单位名称",
                "月缴费基数",
                "参保地区划",
            ],
            &[4, 6],
            16,
            60,
        ),
    };
    let encoding = encoding_for(options, source)?;
    let xlsx = options.xlsx_sources.iter().any(|s| s == source);
    let (mut sink, name) = Sink::create(out, source, &encoding, xlsx, headers, date_columns)?;
    let truth_name = format!("truth_{source}.csv");
    let mut truth = csv::Writer::from_path(out.join(&truth_name))?;
    truth.write_record(["record_key", "true_id_number", "dirt"])?;

    let pool = eligible(world, min_age, max_age);
    let prefix = match source {
        "civil_affairs" => "MZ",
        "health" => "YB",
        "education" => "G",
        _ => "RS",
    };
    for i in 0..rows {
        let subject = subject(world, &pool, min_age, max_age);
        let (name_text, id_text, kinds) = as_written(world, &subject);
        let county_code = world.counties[subject.person.county].code.clone();
        let key = format!("{prefix}{county_code}{:09}", i + 1);
        let world_county_name = world.counties[subject.person.county].name.clone();
        let region = region_as_written(world, source, &subject);
        let rng = &mut world.rng;
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
            + Duration::days(rng.random_range(0..320));
        let cells: Vec<String> = match source {
            "civil_affairs" => {
                let (kind, action) = match rng.random_range(0..20) {
                    0..=6 => (
                        "低保",
                        if rng.random_bool(0.2) {
                            "取消"
                        } else {
                            "新增"
                        },
                    ),
                    7..=8 => ("特困", "新增"),
                    9..=13 => ("临时救助", "发放"),
                    14..=16 => ("残疾人两项补贴", "新增"),
                    _ => ("死亡登记", "登记"),
                };
                let amount = match kind {
                    "死亡登记" => String::new(),
                    "临时救助" => {
                        let fen = rng.random_range(50_000..500_000);
                        amount_text(rng, fen)
                    }
                    _ => {
                        let fen = rng.random_range(20_000..90_000);
                        amount_text(rng, fen)
                    }
                };
                let grade = if kind == "残疾人两项补贴" {
                    ["一级", "二级", "三级", "四级"]
                        .choose(rng)
                        .copied()
                        .unwrap_or("二级")
                        .to_string()
                } else {
                    String::new()
                };
                // 低保 rosters carry sex and birth date; older case files
                // sometimes leave the date blank.
                vec![
                    key.clone(),
                    name_text,
                    id_text,
                    gender_text(rng, subject.person.male),
                    birth_text(rng, &subject.person, 0.8),
                    kind.into(),
                    action.into(),
                    date_text(rng, day),
                    amount,
                    grade,
                    region,
                ]
            }
            "health" => {
                // Median cost per visit in fen: outpatient 150 yuan, inpatient
                // 6,000, chronic-disease outpatient 1,500.
                let (visit, median) = match rng.random_range(0..10) {
                    0..=4 => ("门诊", 15_000.0),
                    5..=8 => ("住院", 600_000.0),
                    _ => ("门诊慢特病", 150_000.0),
                };
                // (diagnosis, serious, weight): serious illness is about one
                // visit in twenty.
                let diagnoses = [
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
                let (diagnosis, serious, _) =
                    *diagnoses.choose_weighted(rng, |d| d.2).expect("diagnoses");
                // Costs are log-normal: most bills are small, a few are ruinous.
                let total = (median * lognormal(rng, 0.9) * if serious { 4.0 } else { 1.0 }) as i64;
                // Basic insurance, critical-illness insurance and medical aid
                // leave 10–40 % to the patient.
                let fund = (total as f64 * rng.random_range(0.6..0.9)) as i64;
                let self_paid = total - fund;
                let settled = day + Duration::days(rng.random_range(0..20));
                let birth = birth_text(rng, &subject.person, 0.5);
                vec![
                    key.clone(),
                    name_text,
                    id_text,
                    gender_text(rng, subject.person.male),
                    birth,
                    visit.into(),
                    date_text(rng, day),
                    date_text(rng, settled),
                    diagnosis.into(),
                    if serious { "是".into() } else { "否".into() },
                    amount_text(rng, total),
                    amount_text(rng, fund),
                    amount_text(rng, self_paid),
                    region,
                ]
            }
            "education" => {
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
                let status = match rng.random_range(0..100) {
                    0..=84 => "在读",
                    85..=88 => "辍学",
                    89..=91 => "休学",
                    92..=96 => "转学",
                    _ => "毕业",
                };
                let school = format!(
                    "{}{}",
                    world_county_name,
                    match stage {
                        "小学" => "第一小学",
                        "初中" => "第二中学",
                        "高中" => "第一中学",
                        "中职" => "职业技术学校",
                        _ => "职业技术学院",
                    }
                );
                let aid = if rng.random_bool(0.3) {
                    let fen = rng.random_range(50_000..300_000);
                    amount_text(rng, fen)
                } else {
                    String::new()
                };
                vec![
                    key.clone(),
                    name_text,
                    id_text,
                    gender_text(rng, subject.person.male),
                    date_text(rng, subject.person.birth),
                    school,
                    stage.into(),
                    grade,
                    status.into(),
                    date_text(rng, day),
                    aid,
                    region,
                ]
            }
            _ => {
                let event = match rng.random_range(0..10) {
                    0..=2 => "失业登记",
                    3..=4 => "停止缴费",
                    5..=7 => "就业登记",
                    _ => "参保缴费",
                };
                let base = rng.random_range(250_000..800_000);
                let employer = format!(
                    "{}{}",
                    world_county_name,
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
                // The insured person's birth date decides the retirement
                // age, so social insurance records almost always have it.
                vec![
                    key.clone(),
                    name_text,
                    id_text,
                    gender_text(rng, subject.person.male),
                    birth_text(rng, &subject.person, 0.95),
                    event.into(),
                    date_text(rng, day),
                    employer,
                    amount_text(rng, base),
                    region,
                ]
            }
        };
        sink.row(&cells)?;
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
        world.build_roster(2000);
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
