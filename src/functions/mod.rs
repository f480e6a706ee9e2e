//! safetynet's SQL functions: every scalar and aggregate function the
//! linker, the warning rules, the access layer and analysts call, in one
//! place below the lake, so any session (local, or a distributed engine's
//! worker) gets them all from [`register_all`].
//!
//! | function | file | returns |
//! |---|---|---|
//! | `sn_name_key(name)`, `sn_pinyin(name)` | `names` | name simplified, separators removed; tone-less pinyin |
//! | `sn_id_birth(id)`, `sn_id_gender(id)` | `id_numbers` | birth date / 男·女 from a valid-looking ID |
//! | `sn_bucket(key, n)` | `bucket` | a stable bucket 0..n-1 |
//! | `sn_mask_id(id)`, `sn_mask_name(name)` | `mask` | masked identifiers |
//! | `sn_json(text)` | `json` | a JSON string literal, for payloads built in SQL |
//! | `sn_level_<kind>(…)` | `levels/<kind>` | comparison level, 0 = a value is missing |
//! | `sn_best_key(rank, key)`, `sn_second_max(x)` | `best` | aggregates over candidate pairs |
//!
//! Each function carries its documentation, which analysts can read with
//! `SELECT * FROM information_schema.routines WHERE routine_name LIKE 'sn_%'`.

pub mod best;
pub mod bucket;
pub mod id_numbers;
pub mod json;
pub mod levels;
pub mod mask;
pub mod names;
#[cfg(test)]
mod round_trip;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// Every scalar function, documented.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut all = vec![
        names::name_key(),
        names::pinyin(),
        id_numbers::birth(),
        id_numbers::gender(),
        bucket::bucket(),
        mask::id_number(),
        mask::name(),
        json::udf(),
    ];
    all.extend(levels::all());
    all
}

/// Every aggregate function, documented.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![best::best_key(), best::second_max()]
}

/// Register every safetynet function in `ctx`, beside DataFusion's own
/// (no built-in is replaced: every name starts with `sn_`).
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    register_in(&mut ctx.state_ref().write())
}

/// As [`register_all`], into a session state: the form a distributed
/// engine's worker builds each task's session in.
pub fn register_in(state: &mut SessionState) -> Result<()> {
    for f in scalar_functions() {
        state.register_udf(Arc::new(f))?;
    }
    for f in aggregate_functions() {
        state.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "safetynet",
    description: Some("Functions for linking and screening departmental records"),
};

/// A function's documentation in DataFusion's form.
pub(crate) fn documentation(description: &str, syntax: &str) -> Documentation {
    Documentation::builder(SECTION, description, syntax).build()
}

/// A scalar function with its documentation attached; everything else is
/// the wrapped function's.
#[derive(Debug)]
struct Documented {
    inner: ScalarUDF,
    documentation: Documentation,
}

impl PartialEq for Documented {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Documented {}

impl Hash for Documented {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl ScalarUDFImpl for Documented {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// `udf` with its documentation.
pub(crate) fn documented(udf: ScalarUDF, description: &str, syntax: &str) -> ScalarUDF {
    ScalarUDF::new_from_impl(Documented {
        inner: udf,
        documentation: documentation(description, syntax),
    })
}

pub(crate) fn arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(args)
}

pub(crate) fn utf8(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Utf8)?)
}

/// A string → string function.
pub(crate) fn text_udf(
    name: &str,
    f: fn(&str) -> Option<String>,
    description: &str,
    syntax: &str,
) -> ScalarUDF {
    let udf = create_udf(
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
    );
    documented(udf, description, syntax)
}

/// A level function over string arguments; any null or empty argument
/// gives level 0, except the optional ones listed in `optional` (passed as
/// None).
pub(crate) fn level_udf(
    name: &str,
    arity: usize,
    optional: &'static [usize],
    f: fn(&[Option<&str>]) -> u8,
    description: &str,
    syntax: &str,
) -> ScalarUDF {
    let udf = create_udf(
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
    );
    documented(udf, description, syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of SQL over the functions, as text.
    pub(crate) async fn row(sql: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        register_all(&ctx).unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches[0]
            .columns()
            .iter()
            .map(|c| datafusion::arrow::util::display::array_value_to_string(c, 0).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn functions_work_in_sql() {
        let got = row(
            "SELECT sn_pinyin('单丽') AS p, sn_level_chinese_name('王麗', '王丽') AS n, \
             sn_level_id_number('11010519491231002X', NULL, '11010519491231002X') AS i, \
             sn_level_id_number(NULL, NULL, '11010519491231002X') AS missing, \
             CAST(sn_id_birth('11010519491231002X') AS VARCHAR) AS b, \
             sn_level_date(DATE '1980-03-15', DATE '1980-03-16') AS d, \
             sn_level_string('jaro_winkler', '0.9', 'martha', 'marhta') AS s, \
             sn_level_number('1,5', 100, 103) AS x, \
             sn_mask_id('430102199001011234') AS m",
        )
        .await;
        assert_eq!(
            got,
            vec![
                "shan li",
                "2",
                "1",
                "0",
                "1949-12-31",
                "2",
                "2",
                "3",
                "430102********1234"
            ]
        );
    }

    /// Analysts can read what each function does, and no built-in function
    /// was replaced.
    #[tokio::test]
    async fn every_function_is_documented_and_none_replaces_a_builtin() {
        let plain = SessionContext::new();
        let builtin: std::collections::HashSet<String> = plain
            .state()
            .scalar_functions()
            .keys()
            .chain(plain.state().aggregate_functions().keys())
            .cloned()
            .collect();
        for f in scalar_functions() {
            assert!(f.name().starts_with("sn_"), "{}", f.name());
            assert!(!builtin.contains(f.name()), "{}", f.name());
            assert!(
                f.documentation().is_some(),
                "{} has no documentation",
                f.name()
            );
        }
        for f in aggregate_functions() {
            assert!(!builtin.contains(f.name()), "{}", f.name());
            assert!(
                f.documentation().is_some(),
                "{} has no documentation",
                f.name()
            );
        }
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
        );
        register_all(&ctx).unwrap();
        let n = ctx
            .sql("SELECT count(*) FROM information_schema.routines WHERE routine_name LIKE 'sn_%' AND description IS NOT NULL")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let n = n[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0);
        assert!(n as usize >= scalar_functions().len(), "{n}");
    }
}
