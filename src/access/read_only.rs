//! Analysts read; nobody writes through SQL (只读). A statement is allowed
//! only if it is a query (SELECT, WITH, VALUES), EXPLAIN of one, SHOW or
//! DESCRIBE. Everything else — COPY … TO a server file, CREATE, INSERT,
//! DROP, SET, … — is refused before planning, naming what was refused.
//! Execution then also runs with DataFusion's DDL, DML and statement
//! switches off, as a second lock.

use anyhow::{Result, bail};
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

/// The options every analyst statement executes with.
pub fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn allowed(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => q.body.as_select().is_none_or(|s| s.into.is_none()),
            Statement::Explain { statement, .. } => {
                allowed(&DfStatement::Statement(statement.clone()))
            }
            Statement::ExplainTable { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. } => true,
            _ => false,
        },
        DfStatement::Explain(e) => allowed(&e.statement),
        _ => false,
    }
}

/// The first words of a statement, for messages.
fn kind(statement: &DfStatement) -> String {
    let text = statement.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Split `sql` into statements and refuse any that is not read-only.
pub fn check(sql: &str) -> Result<Vec<String>> {
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .map_err(|e| anyhow::anyhow!("cannot parse the SQL: {e}"))?;
    let mut out = Vec::new();
    for statement in statements {
        if !allowed(&statement) {
            bail!(
                "read-only access: only SELECT, EXPLAIN, SHOW and DESCRIBE are allowed; refused {} (只读：不允许修改数据或写服务器文件)",
                kind(&statement)
            );
        }
        out.push(statement.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_writes_are_refused_by_name() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT * FROM warnings",
            "SHOW TABLES",
            "SHOW COLUMNS FROM warnings",
            "SELECT 1; SELECT 2",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
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
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "EXPLAIN"),
            ("SELECT * INTO copy_of FROM warnings", "SELECT"),
        ] {
            let err = check(bad).expect_err(bad).to_string();
            assert!(
                err.contains("read-only") && err.contains(word),
                "{bad}: {err}"
            );
        }
    }
}
