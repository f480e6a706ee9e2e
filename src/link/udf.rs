//! The linker's vectorised functions, registered in the lake session so
//! blocking rules, comparisons and analysts' SQL can all call them.
//!
//! | function | returns |
//! |---|---|
//! | `sn_name_key(name)` | name simplified, separators removed |
//! | `sn_pinyin(name)` | tone-less pinyin (surname readings) |
//! | `sn_id_birth(id)` / `sn_id_gender(id)` | birth date / 男·女 from a valid-looking ID |
//! | `sn_level_<kind>(…)` | comparison level, 0 = a value is missing |
//! | `sn_best_key(rank, key)`, `sn_second_max(x)` | aggregates, see `best` |
//! | `sn_bucket(key, n)` | a stable bucket 0..n-1, for deciding large runs in parts |

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use super::chinese::{name_key, pinyin_key};
use super::compare::{self, Kind};
use crate::identity::id_number;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn date_of(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE)
}

fn days_of(date: chrono::NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE
}

fn arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(args)
}

fn utf8(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Utf8)?)
}

/// A string → string function.
pub(crate) fn text_udf(name: &str, f: fn(&str) -> Option<String>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let a = utf8(&arrays(args)?[0])?;
            let a = a.as_string::<i32>();
            let out: StringArray = a.iter().map(|v| v.and_then(f)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// A level function over string arguments; any null argument gives level 0
/// except the optional ones listed in `optional` (passed as None).
fn level_udf(
    name: &str,
    arity: usize,
    optional: &'static [usize],
    f: fn(&[Option<&str>]) -> u8,
) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8; arity],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let columns: Vec<ArrayRef> = arrays(args)?.iter().map(utf8).collect::<Result<_>>()?;
            let strings: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let rows = strings.first().map_or(0, |s| s.len());
            let mut values: Vec<Option<&str>> = vec![None; arity];
            let out: Int32Array = (0..rows)
                .map(|row| {
                    for (i, s) in strings.iter().enumerate() {
                        values[i] = s
                            .is_valid(row)
                            .then(|| s.value(row))
                            .filter(|v| !v.is_empty());
                    }
                    let missing = values
                        .iter()
                        .enumerate()
                        .any(|(i, v)| v.is_none() && !optional.contains(&i));
                    Some(if missing { 0 } else { i32::from(f(&values)) })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Generic string comparison: (kind, thresholds "0.9,0.8", left, right).
fn generic_string_udf() -> ScalarUDF {
    create_udf(
        "sn_level_string",
        vec![DataType::Utf8; 4],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let columns: Vec<ArrayRef> = arrays(args)?.iter().map(utf8).collect::<Result<_>>()?;
            let s: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let kind = match s[0].value(0) {
                "jaro_winkler" => Kind::JaroWinkler,
                "levenshtein" => Kind::Levenshtein,
                "damerau_levenshtein" => Kind::DamerauLevenshtein,
                _ => Kind::Exact,
            };
            let thresholds = parse_thresholds(s[1].value(0));
            let out: Int32Array = (0..s[2].len())
                .map(|i| {
                    Some(if s[2].is_null(i) || s[3].is_null(i) {
                        0
                    } else {
                        i32::from(compare::generic_string(
                            kind,
                            s[2].value(i),
                            s[3].value(i),
                            &thresholds,
                        ))
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Numeric (and date, as days) comparison: (thresholds, left, right).
fn generic_number_udf() -> ScalarUDF {
    create_udf(
        "sn_level_number",
        vec![DataType::Utf8, DataType::Float64, DataType::Float64],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let thresholds = parse_thresholds(utf8(&a[0])?.as_string::<i32>().value(0));
            let l = cast(&a[1], &DataType::Float64)?;
            let r = cast(&a[2], &DataType::Float64)?;
            let (l, r): (&Float64Array, &Float64Array) = (l.as_primitive(), r.as_primitive());
            let out: Int32Array = l
                .iter()
                .zip(r.iter())
                .map(|(x, y)| {
                    Some(x.zip(y).map_or(0, |(x, y)| {
                        i32::from(compare::generic_number(x, y, &thresholds))
                    }))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

pub fn parse_thresholds(text: &str) -> Vec<f64> {
    text.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn date_level_udf() -> ScalarUDF {
    create_udf(
        "sn_level_date",
        vec![DataType::Date32, DataType::Date32],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let l = a[0].as_primitive::<Date32Type>();
            let r = a[1].as_primitive::<Date32Type>();
            let out: Int32Array = l
                .iter()
                .zip(r.iter())
                .map(|(x, y)| {
                    let level = match (x.and_then(date_of), y.and_then(date_of)) {
                        (Some(x), Some(y)) => compare::date(x, y),
                        _ => 0,
                    };
                    Some(i32::from(level))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

fn id_birth_udf() -> ScalarUDF {
    create_udf(
        "sn_id_birth",
        vec![DataType::Utf8],
        DataType::Date32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = utf8(&arrays(args)?[0])?;
            let out: Date32Array = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(id_number::birth_date).map(days_of))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// FNV-1a: a hash that stays the same across Rust versions and runs, so a
/// record lands in the same bucket in every query of a run.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `sn_bucket(key, n)`: which of n buckets a key belongs to (0..n-1).
fn bucket_udf() -> ScalarUDF {
    create_udf(
        "sn_bucket",
        vec![DataType::Utf8, DataType::Int64],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let columns = arrays(args)?;
            let keys = utf8(&columns[0])?;
            let n = cast(&columns[1], &DataType::Int64)?;
            let n = n.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let out: Int32Array = keys
                .as_string::<i32>()
                .iter()
                .zip(n.iter())
                .map(|(k, n)| match (k, n) {
                    (Some(k), Some(n)) if n > 0 => Some((stable_hash(k) % n as u64) as i32),
                    _ => None,
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Register every linker function in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(super::best::best_key());
    ctx.register_udaf(super::best::second_max());
    ctx.register_udf(bucket_udf());
    ctx.register_udf(text_udf("sn_name_key", |s| Some(name_key(s))));
    ctx.register_udf(text_udf("sn_pinyin", |s| Some(pinyin_key(s))));
    ctx.register_udf(text_udf("sn_id_gender", |s| {
        id_number::gender(s).map(|g| {
            if g == 'M' {
                "男".to_string()
            } else {
                "女".to_string()
            }
        })
    }));
    ctx.register_udf(id_birth_udf());
    ctx.register_udf(level_udf("sn_level_id_number", 3, &[1], |v| {
        compare::id_number(v[0].unwrap_or_default(), v[1], v[2].unwrap_or_default())
    }));
    ctx.register_udf(level_udf("sn_level_chinese_name", 2, &[], |v| {
        compare::chinese_name(v[0].unwrap_or_default(), v[1].unwrap_or_default())
    }));
    // (left name, right name, left key, right key, left pinyin, right pinyin)
    ctx.register_udf(level_udf("sn_level_chinese_name_keys", 6, &[], |v| {
        let s = |i: usize| v[i].unwrap_or_default();
        compare::chinese_name_with_keys([s(0), s(2), s(4)], [s(1), s(3), s(5)])
    }));
    ctx.register_udf(level_udf("sn_level_gender", 2, &[], |v| {
        compare::gender(v[0].unwrap_or_default(), v[1].unwrap_or_default())
    }));
    ctx.register_udf(level_udf("sn_level_region", 2, &[], |v| {
        compare::region(v[0].unwrap_or_default(), v[1].unwrap_or_default())
    }));
    ctx.register_udf(level_udf("sn_level_exact", 2, &[], |v| {
        u8::from(v[0] != v[1]) + 1
    }));
    ctx.register_udf(date_level_udf());
    ctx.register_udf(generic_string_udf());
    ctx.register_udf(generic_number_udf());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT sn_pinyin('单丽') AS p, sn_level_chinese_name('王麗', '王丽') AS n, \
                 sn_level_id_number('11010519491231002X', NULL, '11010519491231002X') AS i, \
                 sn_level_id_number(NULL, NULL, '11010519491231002X') AS missing, \
                 CAST(sn_id_birth('11010519491231002X') AS VARCHAR) AS b, \
                 sn_level_date(DATE '1980-03-15', DATE '1980-03-16') AS d, \
                 sn_level_string('jaro_winkler', '0.9', 'martha', 'marhta') AS s, \
                 sn_level_number('1,5', 100, 103) AS x",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row: Vec<String> = batches[0]
            .columns()
            .iter()
            .map(|c| datafusion::arrow::util::display::array_value_to_string(c, 0).unwrap())
            .collect();
        assert_eq!(
            row,
            vec!["shan li", "2", "1", "0", "1949-12-31", "2", "2", "3"]
        );
    }

    #[tokio::test]
    async fn buckets_are_stable_and_spread() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT sn_bucket(CAST(v AS VARCHAR), 4) AS b, count(*) AS n FROM generate_series(1, 4000) t(v) GROUP BY 1 ORDER BY 1",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let counts: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(counts.len(), 4, "every bucket used");
        assert!(
            counts.iter().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
        // Fixed across runs and Rust versions.
        assert_eq!(stable_hash("P0000001") % 7, stable_hash("P0000001") % 7);
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
    }
}
