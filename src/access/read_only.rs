//! Analysts read; nobody writes through SQL (只读). Every statement is
//! judged before planning ([`judge`]):
//!
//! - **reads** pass: queries (SELECT, WITH, VALUES, TABLE) with no `INTO`
//!   and no data-changing statement at any depth, EXPLAIN of one, SHOW,
//!   DESCRIBE;
//! - **session housekeeping** that client drivers send passes: `SET` of
//!   the client settings psql, JDBC and psycopg use ([`CLIENT_SETTINGS`]),
//!   transactions, cursors over a read, DISCARD, DEALLOCATE;
//! - everything else is refused, naming what was refused: COPY to a server
//!   file, CREATE, INSERT, DROP, `SET datafusion.…` (which would lift the
//!   memory limit or make the server create directories), `SELECT … INTO`
//!   in any subquery.
//!
//! Region-scoped callers get plain EXPLAIN only: EXPLAIN ANALYZE counts the
//! rows a scan read before the region filter, and VERBOSE shows file
//! paths; plans shown to anyone but admin have their paths removed
//! ([`scrub_plan`]). Execution then also runs with DataFusion's DDL, DML
//! and statement switches off ([`sql_options`]), as a second lock.

use std::ops::ControlFlow;

use anyhow::{Result, bail};
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Query, Select, Set, SetExpr, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use super::Principal;

/// Settings a client may `SET`: what drivers send when they connect, none
/// of which reaches the engine's own configuration.
pub const CLIENT_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lock_timeout",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "timezone",
    "transaction_isolation",
];

/// The options every analyst statement executes with.
pub fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A read: plan it with [`sql_options`].
    Read,
    /// Session housekeeping handled by the endpoint itself.
    Housekeeping,
    /// Refused, with the reason a user reads.
    Refused(String),
}

/// Finds what no read may contain at any depth: `INTO`, statements that
/// change data, and any statement inside another (EXPLAIN of a SET, say)
/// that is not itself a read.
#[derive(Default)]
struct Writes {
    depth: usize,
}

impl Visitor for Writes {
    type Break = String;

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break("SELECT … INTO".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        fn writes(body: &SetExpr) -> Option<&'static str> {
            match body {
                SetExpr::Insert(_) => Some("INSERT"),
                SetExpr::Update(_) => Some("UPDATE"),
                SetExpr::Delete(_) => Some("DELETE"),
                SetExpr::Merge(_) => Some("MERGE"),
                SetExpr::SetOperation { left, right, .. } => writes(left).or(writes(right)),
                _ => None,
            }
        }
        match writes(&query.body) {
            Some(w) => ControlFlow::Break(w.into()),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > 1 && classify(statement) != Some(Verdict::Read) {
            return ControlFlow::Break(first_words(&statement.to_string()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Reads and housekeeping by kind; None for anything else.
fn classify(statement: &Statement) -> Option<Verdict> {
    use Statement as S;
    Some(match statement {
        S::Query(_)
        | S::Explain { .. }
        | S::ExplainTable { .. }
        | S::ShowTables { .. }
        | S::ShowColumns { .. }
        | S::ShowFunctions { .. }
        | S::ShowVariable { .. }
        | S::ShowVariables { .. } => Verdict::Read,
        S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Declare { .. }
        | S::Fetch { .. }
        | S::Close { .. }
        | S::Discard { .. }
        | S::Deallocate { .. }
        | S::Set(_) => Verdict::Housekeeping,
        _ => return None,
    })
}

fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

fn refused(what: &str) -> Verdict {
    Verdict::Refused(format!(
        "read-only access: only SELECT, EXPLAIN, SHOW and DESCRIBE are allowed; refused {what} (只读：不允许修改数据或写服务器文件)"
    ))
}

/// Whether a `SET` touches only client settings.
fn set_allowed(set: &Set) -> Result<(), String> {
    let name_ok = |name: &str| {
        let name = name.trim_matches('"').to_ascii_lowercase();
        CLIENT_SETTINGS.contains(&name.as_str())
    };
    match set {
        Set::SingleAssignment { variable, .. } => {
            let name = variable.to_string();
            if name_ok(&name) { Ok(()) } else { Err(name) }
        }
        Set::MultipleAssignments { assignments } => {
            match assignments.iter().find(|a| !name_ok(&a.name.to_string())) {
                Some(a) => Err(a.name.to_string()),
                None => Ok(()),
            }
        }
        Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => Ok(()),
        Set::SetTransaction { .. } => Ok(()),
        other => Err(first_words(&other.to_string())),
    }
}

/// Judge one statement for `p`.
pub fn judge(statement: &Statement, p: &Principal) -> Verdict {
    let Some(verdict) = classify(statement) else {
        return refused(&first_words(&statement.to_string()));
    };
    if let ControlFlow::Break(what) = statement.visit(&mut Writes::default()) {
        return refused(&what);
    }
    match statement {
        Statement::Set(set) => {
            if let Err(name) = set_allowed(set) {
                return Verdict::Refused(format!(
                    "SET {name} is not allowed: only client settings ({}) may be set (不允许修改服务器设置)",
                    CLIENT_SETTINGS.join(", ")
                ));
            }
        }
        Statement::Explain {
            analyze, verbose, ..
        } if p.region.is_some() && (*analyze || *verbose) => {
            return Verdict::Refused(EXPLAIN_FLAGS.into());
        }
        _ => {}
    }
    verdict
}

const EXPLAIN_FLAGS: &str = "EXPLAIN ANALYZE and EXPLAIN VERBOSE are not available to region-scoped users (they show rows before the region filter and storage paths); use plain EXPLAIN";

/// Judge a statement as DataFusion's own parser reads it (the shell).
fn judge_df(statement: &DfStatement, p: &Principal) -> Verdict {
    match statement {
        DfStatement::Statement(s) => judge(s, p),
        DfStatement::Explain(e) => {
            if p.region.is_some() && (e.options.analyze || e.options.verbose) {
                return Verdict::Refused(EXPLAIN_FLAGS.into());
            }
            match judge_df(&e.statement, p) {
                Verdict::Housekeeping => refused(&first_words(&statement.to_string())),
                other => other,
            }
        }
        _ => refused(&first_words(&statement.to_string())),
    }
}

/// Split `sql` into statements, every one of which must be a read for `p`
/// (the shell has no session housekeeping).
pub fn check(sql: &str, p: &Principal) -> Result<Vec<String>> {
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .map_err(|e| anyhow::anyhow!("cannot parse the SQL: {e}"))?;
    let mut out = Vec::new();
    for statement in statements {
        match judge_df(&statement, p) {
            Verdict::Read => out.push(statement.to_string()),
            Verdict::Housekeeping => bail!(
                "{} is not available in the shell (只读查询)",
                first_words(&statement.to_string())
            ),
            Verdict::Refused(why) => bail!(why),
        }
    }
    Ok(out)
}

/// A plan as non-admin callers see it: storage URLs and file paths
/// removed, so the lake's layout stays private.
pub fn scrub_plan(text: &str) -> String {
    use std::sync::LazyLock;
    static PATHS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"([a-z][a-z0-9+.-]*://[^\s,\]\)\}"']*|/[^\s,\]\)\}"']+)"#)
            .expect("static pattern")
    });
    PATHS.replace_all(text, "…").into_owned()
}

/// Whether a statement's text is an EXPLAIN, whose output is a plan.
pub fn is_explain(sql: &str) -> bool {
    sql.trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("explain"))
}

/// EXPLAIN output as non-admin callers see it: every text cell scrubbed
/// of paths.
pub fn scrub_plan_batches(
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
    use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    batches
        .into_iter()
        .map(|batch| {
            let mut fields = Vec::new();
            let mut columns: Vec<ArrayRef> = Vec::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if matches!(
                    field.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ) {
                    let text = cast(column, &DataType::Utf8)?;
                    let scrubbed: StringArray = text
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v.map(scrub_plan))
                        .collect();
                    fields.push(Field::new(
                        field.name(),
                        DataType::Utf8,
                        field.is_nullable(),
                    ));
                    columns.push(Arc::new(scrubbed));
                } else {
                    fields.push(field.as_ref().clone());
                    columns.push(column.clone());
                }
            }
            Ok(datafusion::arrow::array::RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn analyst(region: Option<&str>) -> Principal {
        Principal {
            name: "a".into(),
            role: Role::Analyst,
            region: region.map(str::to_string),
        }
    }

    fn parse_one(sql: &str) -> Statement {
        let mut s =
            datafusion::sql::sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap();
        s.remove(0)
    }

    #[test]
    fn reads_pass_and_writes_are_refused_by_name() {
        let p = analyst(None);
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT * FROM warnings",
            "SHOW TABLES",
            "SHOW COLUMNS FROM warnings",
            "SELECT 1; SELECT 2",
            "SELECT * FROM (SELECT 1 UNION ALL SELECT 2) t",
        ] {
            assert!(check(ok, &p).is_ok(), "{ok}: {:?}", check(ok, &p));
        }
        for (bad, word) in [
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            (
                "COPY warnings TO '/tmp/x.parquet' STORED AS PARQUET",
                "COPY",
            ),
            ("CREATE TABLE t AS SELECT 1", "CREATE"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE",
            ),
            ("INSERT INTO warnings VALUES (1)", "INSERT"),
            ("DROP TABLE warnings", "DROP"),
            ("DELETE FROM warnings", "DELETE"),
            ("UPDATE warnings SET status = 'closed'", "UPDATE"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("SELECT 1; DROP TABLE warnings", "DROP"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SELECT * INTO copy_of FROM warnings", "INTO"),
            ("(SELECT * INTO audit_log FROM warnings)", "INTO"),
            ("SELECT * FROM (SELECT * INTO t FROM warnings) x", "INTO"),
            ("SELECT 1 UNION (SELECT 2 INTO t)", "INTO"),
        ] {
            let err = check(bad, &p).expect_err(bad).to_string();
            assert!(err.contains(word), "{bad}: {err}");
        }
    }

    #[test]
    fn only_client_settings_may_be_set() {
        let p = analyst(None);
        for ok in [
            "SET search_path = public",
            "SET application_name = 'DBeaver'",
            "SET extra_float_digits = 3",
            "SET DateStyle = ISO",
            "SET TIME ZONE 'Asia/Shanghai'",
            "SET statement_timeout = 1000",
        ] {
            assert_eq!(judge(&parse_one(ok), &p), Verdict::Housekeeping, "{ok}");
        }
        for bad in [
            "SET datafusion.runtime.memory_limit = '6G'",
            "SET datafusion.execution.temp_directory = '/tmp/x'",
            "SET datafusion.explain.show_statistics = true",
            "SET ROLE admin",
            "SET SESSION AUTHORIZATION admin",
        ] {
            match judge(&parse_one(bad), &p) {
                Verdict::Refused(why) => assert!(why.contains("not allowed"), "{bad}: {why}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn region_users_get_plain_explain_without_paths() {
        let county = analyst(Some("522322"));
        assert_eq!(
            judge(&parse_one("EXPLAIN SELECT 1"), &county),
            Verdict::Read
        );
        for bad in ["EXPLAIN ANALYZE SELECT 1", "EXPLAIN VERBOSE SELECT 1"] {
            assert!(matches!(
                judge(&parse_one(bad), &county),
                Verdict::Refused(_)
            ));
            assert!(check(bad, &county).is_err(), "{bad}");
            assert_eq!(
                judge(&parse_one(bad), &analyst(None)),
                Verdict::Read,
                "unscoped analysts may"
            );
        }
        let plan = "DataSourceExec: file_groups={1 group: [[/tmp/lake/warnings/part-0.parquet]]}, projection=[a] url=file:///tmp/lake/warnings/";
        let scrubbed = scrub_plan(plan);
        assert!(
            !scrubbed.contains("/tmp") && !scrubbed.contains("file://"),
            "{scrubbed}"
        );
        assert!(scrubbed.contains("projection=[a]"));
    }

    mod gate_property {
        use super::*;
        use proptest::prelude::*;

        /// Write and DDL forms, to be wrapped at random depths.
        fn writes() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("SELECT * INTO t FROM warnings".to_string()),
                Just("SELECT a INTO TEMPORARY t FROM warnings".to_string()),
                Just("INSERT INTO warnings SELECT * FROM warnings".to_string()),
                Just("UPDATE warnings SET status = 'x'".to_string()),
                Just("DELETE FROM warnings".to_string()),
                Just("DROP TABLE warnings".to_string()),
                Just("CREATE TABLE t AS SELECT 1".to_string()),
                Just("CREATE VIEW v AS SELECT 1".to_string()),
                Just("COPY warnings TO '/tmp/x.csv'".to_string()),
                Just("SET datafusion.runtime.memory_limit = '9G'".to_string()),
                Just("TRUNCATE warnings".to_string()),
                Just("ALTER TABLE warnings ADD COLUMN x INT".to_string()),
            ]
        }

        /// A write nested in 0–4 layers of parentheses, subqueries, CTEs,
        /// unions, EXPLAIN and cursors.
        fn nested() -> impl Strategy<Value = String> {
            (writes(), prop::collection::vec(0u8..7, 0..5)).prop_map(|(w, layers)| {
                layers.into_iter().fold(w, |inner, layer| match layer {
                    0 => format!("({inner})"),
                    1 => format!("SELECT * FROM ({inner}) AS x"),
                    2 => format!("WITH c AS ({inner}) SELECT * FROM c"),
                    3 => format!("SELECT 1 UNION ALL ({inner})"),
                    4 => format!("EXPLAIN {inner}"),
                    5 => format!("DECLARE c CURSOR FOR {inner}"),
                    _ => format!("SELECT 1; {inner}"),
                })
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn no_nested_write_passes(sql in nested()) {
                let p = analyst(None);
                // Either it does not parse at all, or some statement is refused.
                if let Ok(statements) = datafusion::sql::sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, &sql) {
                    let refused = statements.iter().any(|s| matches!(judge(s, &p), Verdict::Refused(_)));
                    prop_assert!(refused, "passed the gate: {}", sql);
                }
                prop_assert!(check(&sql, &p).is_err(), "passed the shell: {}", sql);
            }
        }
    }
}
