//! `sn_level_string(metric, thresholds, value, candidate)`: generic string
//! comparison with thresholds.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use super::parse_thresholds;
use crate::functions::{arrays, documented, utf8};

/// The function's name in SQL.
pub const NAME: &str = "sn_level_string";

/// How two strings are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Similarity 0..1; a level holds when similarity ≥ its threshold.
    JaroWinkler,
    /// Edits; a level holds when the distance ≤ its threshold.
    Levenshtein,
    /// Edits counting a swap of neighbours as one.
    DamerauLevenshtein,
}

impl Metric {
    /// The name the SQL function takes as its first argument.
    pub fn name(self) -> &'static str {
        match self {
            Metric::JaroWinkler => "jaro_winkler",
            Metric::Levenshtein => "levenshtein",
            Metric::DamerauLevenshtein => "damerau_levenshtein",
        }
    }

    fn parse(text: &str) -> Option<Metric> {
        [
            Metric::JaroWinkler,
            Metric::Levenshtein,
            Metric::DamerauLevenshtein,
        ]
        .into_iter()
        .find(|m| m.name() == text)
    }
}

/// Level 1 exact, then one level per threshold, then different. The
/// metric is computed once per pair, whatever the number of thresholds
/// (most pairs of a random sample miss them all).
pub fn level(metric: Metric, left: &str, right: &str, thresholds: &[f64]) -> u8 {
    if left == right {
        return 1;
    }
    let different = thresholds.len() as u8 + 2;
    if thresholds.is_empty() {
        return different;
    }
    // The characters the two share bound both metrics cheaply; most pairs
    // of a random sample are settled "different" by the bound alone.
    let (shared, left_length, right_length) = shared_characters(left, right);
    let shared = shared as f64;
    let short = left_length.min(right_length) as f64;
    let long = left_length.max(right_length) as f64;
    // A similarity meets a threshold at or above it; a distance at or below.
    let value = match metric {
        Metric::JaroWinkler => {
            // Jaro's matches are shared characters, so Jaro is at most
            // (s/|l| + s/|r| + 1) / 3; Winkler's prefix bonus adds at most
            // 0.4 of what is left.
            let jaro_bound = if shared == 0.0 {
                0.0
            } else {
                (shared / short + shared / long + 1.0) / 3.0
            };
            let bound = jaro_bound + 0.4 * (1.0 - jaro_bound);
            let lowest = thresholds.iter().copied().fold(f64::INFINITY, f64::min);
            if bound + 1e-9 < lowest {
                return different;
            }
            strsim::jaro_winkler(left, right)
        }
        Metric::Levenshtein | Metric::DamerauLevenshtein => {
            // Every edit changes the characters one string lacks by at
            // most one, so the longer string's unshared characters are a
            // lower bound on the distance.
            let widest = thresholds.iter().copied().fold(0.0, f64::max);
            if long - shared > widest {
                return different;
            }
            if metric == Metric::Levenshtein {
                strsim::levenshtein(left, right) as f64
            } else {
                let (l, r): (Vec<char>, Vec<char>) =
                    (left.chars().collect(), right.chars().collect());
                damerau_levenshtein(&l, &r) as f64
            }
        }
    };
    let hit = |t: f64| match metric {
        Metric::JaroWinkler => value >= t,
        Metric::Levenshtein | Metric::DamerauLevenshtein => value <= t,
    };
    match thresholds.iter().position(|t| hit(*t)) {
        Some(i) => i as u8 + 2,
        None => different,
    }
}

/// Characters two strings share, counted with repeats (the size of the
/// intersection of their multisets), and the two lengths in characters.
/// ASCII text, the usual case for generic columns, is counted without
/// allocating.
fn shared_characters(a: &str, b: &str) -> (usize, usize, usize) {
    if a.is_ascii() && b.is_ascii() {
        let mut counts = [0u16; 128];
        for c in a.bytes() {
            counts[usize::from(c)] += 1;
        }
        let mut shared = 0;
        for c in b.bytes() {
            let left = &mut counts[usize::from(c)];
            if *left > 0 {
                *left -= 1;
                shared += 1;
            }
        }
        return (shared, a.len(), b.len());
    }
    let mut x: Vec<char> = a.chars().collect();
    let mut y: Vec<char> = b.chars().collect();
    x.sort_unstable();
    y.sort_unstable();
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    (shared, x.len(), y.len())
}

/// The edit distance counting insertions, deletions, substitutions and
/// swaps of neighbours, with no limit on edits between swapped characters
/// (Lowrance and Wagner), as `strsim::damerau_levenshtein` computes it.
/// strsim keeps the last row each character was seen on in a hash map;
/// names and numbers are short, so a list searched in order is faster.
pub fn damerau_levenshtein(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return n.max(m);
    }
    let width = m + 2;
    let far = n + m;
    // d[(i + 1) * width + (j + 1)]: distance between a[..i] and b[..j];
    // row and column 0 hold the sentinel `far`.
    let mut d = vec![0usize; (n + 2) * width];
    d[0] = far;
    for i in 0..=n {
        d[(i + 1) * width] = far;
        d[(i + 1) * width + 1] = i;
    }
    for j in 0..=m {
        d[j + 1] = far;
        d[width + j + 1] = j;
    }
    // The last row (1-based) of `a` on which each character was seen.
    let mut seen: Vec<(char, usize)> = Vec::with_capacity(n);
    for i in 1..=n {
        let mut last_match_column = 0;
        for j in 1..=m {
            let row_of_b = seen
                .iter()
                .find(|(c, _)| *c == b[j - 1])
                .map_or(0, |(_, row)| *row);
            let column = last_match_column;
            let cost = if a[i - 1] == b[j - 1] {
                last_match_column = j;
                0
            } else {
                1
            };
            let substitute = d[i * width + j] + cost;
            let insert = d[(i + 1) * width + j] + 1;
            let delete = d[i * width + j + 1] + 1;
            let swap = d[row_of_b * width + column] + (i - row_of_b - 1) + 1 + (j - column - 1);
            d[(i + 1) * width + j + 1] = substitute.min(insert).min(delete).min(swap);
        }
        match seen.iter_mut().find(|(c, _)| *c == a[i - 1]) {
            Some(entry) => entry.1 = i,
            None => seen.push((a[i - 1], i)),
        }
    }
    d[(n + 1) * width + m + 1]
}

/// The SQL function; an unknown metric compares exactly.
pub fn udf() -> ScalarUDF {
    let udf = create_udf(
        NAME,
        vec![DataType::Utf8; 4],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let columns: Vec<ArrayRef> = arrays(args)?.iter().map(utf8).collect::<Result<_>>()?;
            let s: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let metric = Metric::parse(s[0].value(0));
            let thresholds = parse_thresholds(s[1].value(0));
            let out: Int32Array = (0..s[2].len())
                .map(|i| {
                    Some(if s[2].is_null(i) || s[3].is_null(i) {
                        0
                    } else {
                        let (l, r) = (s[2].value(i), s[3].value(i));
                        i32::from(match metric {
                            Some(m) => level(m, l, r, &thresholds),
                            None => u8::from(l != r) + 1,
                        })
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    documented(
        udf,
        "String agreement by a metric (jaro_winkler, levenshtein, damerau_levenshtein): 1 exact, then one level per threshold, then different; 0 missing.",
        "sn_level_string('jaro_winkler', '0.95,0.88', l.surname, r.surname)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_levels() {
        assert_eq!(
            level(Metric::JaroWinkler, "martha", "marhta", &[0.95, 0.9]),
            2
        );
        assert_eq!(
            level(Metric::Levenshtein, "kitten", "sitting", &[1.0, 3.0]),
            3
        );
        assert_eq!(level(Metric::DamerauLevenshtein, "ab", "ba", &[1.0]), 2);
        // Beyond the widest threshold by length alone: different.
        assert_eq!(
            level(Metric::DamerauLevenshtein, "19420210", "194", &[1.0, 2.0]),
            4
        );
        assert_eq!(
            level(
                Metric::DamerauLevenshtein,
                "3116798",
                "3116789",
                &[1.0, 2.0]
            ),
            2
        );
    }

    /// The bounds that skip the metric never change a level: every pair of
    /// a small word set gets the level the metric itself gives.
    #[test]
    fn the_shortcuts_give_the_metrics_own_levels() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "martha",
            "marhta",
            "dwayne",
            "duane",
            "dixon",
            "dicksonx",
            "19151111",
            "19151112",
            "19511111",
            "91151111",
            "3116798",
            "3116789",
            "王伟",
            "王玮",
            "覃翠莲",
        ];
        let plain = |metric: Metric, l: &str, r: &str, thresholds: &[f64]| -> u8 {
            if l == r {
                return 1;
            }
            let hit = |t: f64| match metric {
                Metric::JaroWinkler => strsim::jaro_winkler(l, r) >= t,
                Metric::Levenshtein => strsim::levenshtein(l, r) as f64 <= t,
                Metric::DamerauLevenshtein => strsim::damerau_levenshtein(l, r) as f64 <= t,
            };
            thresholds
                .iter()
                .position(|t| hit(*t))
                .map_or(thresholds.len() as u8 + 2, |i| i as u8 + 2)
        };
        for (metric, thresholds) in [
            (Metric::JaroWinkler, vec![0.95, 0.88, 0.7]),
            (Metric::JaroWinkler, vec![0.6]),
            (Metric::Levenshtein, vec![1.0, 2.0]),
            (Metric::DamerauLevenshtein, vec![1.0, 2.0, 4.0]),
        ] {
            for l in words {
                for r in words {
                    assert_eq!(
                        level(metric, l, r, &thresholds),
                        plain(metric, l, r, &thresholds),
                        "{metric:?} {l} / {r}"
                    );
                }
            }
        }
    }

    /// The distance is strsim's on every pair of short strings over a small
    /// alphabet (where swaps, repeats and far transpositions all occur),
    /// and on non-ASCII text.
    #[test]
    fn damerau_levenshtein_equals_strsim() {
        let alphabet = ['a', 'b', 'c', '王'];
        let mut words = vec![String::new()];
        for length in 1..=4 {
            for code in 0..alphabet.len().pow(length) {
                let mut rest = code;
                let mut word = String::new();
                for _ in 0..length {
                    word.push(alphabet[rest % alphabet.len()]);
                    rest /= alphabet.len();
                }
                words.push(word);
            }
        }
        for a in words.iter().step_by(3) {
            for b in &words {
                let (ac, bc): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
                assert_eq!(
                    damerau_levenshtein(&ac, &bc),
                    strsim::damerau_levenshtein(a, b),
                    "{a} / {b}"
                );
            }
        }
        for (a, b) in [
            ("ca", "abc"),
            ("覃翠莲", "翠覃莲"),
            ("19151111", "19511111"),
        ] {
            let (ac, bc): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            assert_eq!(
                damerau_levenshtein(&ac, &bc),
                strsim::damerau_levenshtein(a, b),
                "{a} / {b}"
            );
        }
    }
}
