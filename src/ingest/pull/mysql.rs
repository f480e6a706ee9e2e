//! MySQL and MariaDB exchange databases: each window is read over the
//! text protocol, row by row, and written as CSV to a local file.
//!
//! The connection URL (`mysql://user:password@host:port/db`) comes from
//! the environment variable the pipeline names; it is never printed or
//! stored.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

use super::windows::{Column, Database, TypeClass, pull_windows};
use super::{Job, env_url, tls};
use crate::ingest::FileOutcome;
use crate::lake::query::sql_text;

struct Mysql {
    conn: mysql_async::Conn,
}

/// Pull the job's source from MySQL or MariaDB, window by window.
pub(super) async fn pull(job: &Job<'_>) -> Result<Vec<FileOutcome>> {
    let url = env_url(job, "MySQL")?;
    let cannot = || job.cannot_connect("MySQL");
    let tls = tls::mysql(&url).with_context(cannot)?;
    // The parse error would quote the URL, password and all.
    let opts = mysql_async::Opts::from_url(&tls.url).map_err(|_| {
        anyhow!(
            "{}: not a mysql://user:password@host:port/database URL",
            cannot()
        )
    })?;
    let opts = mysql_async::OptsBuilder::from_opts(opts).ssl_opts(tls.ssl.clone());
    let conn = mysql_async::Conn::new(opts).await.with_context(cannot)?;
    let mut db = Mysql { conn };
    let cipher: Option<(String, String)> = db
        .conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .ok()
        .flatten();
    let encrypted = cipher.map(|(_, cipher)| !cipher.is_empty());
    tls::report(job.source(), "MySQL", &tls.mode, encrypted, tls.check);
    let result = pull_windows(&mut db, job).await;
    let _ = db.conn.disconnect().await;
    result
}

fn class_of(t: ColumnType) -> TypeClass {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => TypeClass::Integer,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => {
            TypeClass::Decimal
        }
        MYSQL_TYPE_DATE
        | MYSQL_TYPE_NEWDATE
        | MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => TypeClass::Date,
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_JSON => TypeClass::Text,
        _ => TypeClass::Other,
    }
}

/// A text-protocol value as CSV text (NULL as empty).
fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::NULL) => String::new(),
        Some(Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(other) => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

#[async_trait::async_trait]
impl Database for Mysql {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn quote(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn as_text(&self, expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }

    async fn value(&mut self, _slot: usize, value: &str, _column: &Column) -> Result<String> {
        // Rows are read over the text protocol (a prepared statement would
        // return them in binary form, written differently), so the value
        // is a quoted literal; user variables would be bound but can clash
        // with the column's collation. MySQL reads backslashes in string
        // literals as escapes: such a value is refused.
        if value.contains('\\') {
            bail!("a watermark value with a backslash cannot be compared: {value:?}");
        }
        Ok(sql_text(value))
    }

    fn total_order(&self, columns: &[Column]) -> String {
        (1..=columns.len().max(1))
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn columns(&mut self, select: &str) -> Result<Vec<Column>> {
        let result = self.conn.query_iter(format!("{select} LIMIT 0")).await?;
        let columns = result
            .columns_ref()
            .iter()
            .map(|c| {
                let t = c.column_type();
                Column {
                    name: c.name_str().into_owned(),
                    type_name: format!("{t:?}")
                        .trim_start_matches("MYSQL_TYPE_")
                        .to_lowercase(),
                    class: class_of(t),
                }
            })
            .collect();
        result.drop_result().await?;
        Ok(columns)
    }

    async fn first_text(&mut self, select: &str) -> Result<Option<String>> {
        let row: Option<Row> = self.conn.query_first(select).await?;
        Ok(row.and_then(|row| match row.as_ref(0) {
            None | Some(Value::NULL) => None,
            value => Some(text_of(value)),
        }))
    }

    async fn copy_csv(&mut self, select: &str, path: &Path) -> Result<()> {
        let mut result = self.conn.query_iter(select).await?;
        let mut out =
            csv::Writer::from_writer(std::io::BufWriter::new(std::fs::File::create(path)?));
        let header: Vec<String> = result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        out.write_record(&header)?;
        while let Some(row) = result.next().await? {
            out.write_record((0..row.len()).map(|i| text_of(row.as_ref(i))))?;
        }
        out.into_inner()
            .map_err(|e| anyhow!("cannot write the pulled rows: {e}"))?
            .flush()?;
        Ok(())
    }
}
