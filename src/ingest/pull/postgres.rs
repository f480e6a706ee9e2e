//! PostgreSQL exchange databases: each window is written by the server
//! itself (`COPY (…) TO STDOUT` as CSV) to a local file.
//!
//! The connection URL comes from the environment variable the pipeline
//! names; it is never printed or stored.

use std::path::Path;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, pin_mut};
use tokio::io::AsyncWriteExt;

use super::windows::{Column, Database, TypeClass, pull_windows};
use super::{Job, env_url, tls};
use crate::ingest::FileOutcome;

struct Postgres {
    client: tokio_postgres::Client,
}

/// Pull the job's source from PostgreSQL, window by window.
pub(super) async fn pull(job: &Job<'_>) -> Result<Vec<FileOutcome>> {
    let url = env_url(job, "PostgreSQL")?;
    let cannot_connect = || job.cannot_connect("PostgreSQL");
    let tls = tls::postgres(&url).with_context(cannot_connect)?;
    let (client, connection) = tokio_postgres::connect(&tls.url, tls.connector)
        .await
        .with_context(cannot_connect)?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    let mut db = Postgres { client };
    say_how_connected(&db, job, &tls.mode, tls.check).await;
    let result = pull_windows(&mut db, job).await;
    drop(db);
    connection.abort();
    result
}

/// Log whether the connection is encrypted and the server checked.
async fn say_how_connected(db: &Postgres, job: &Job<'_>, mode: &str, check: tls::Check) {
    let encrypted = db
        .client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .ok()
        .and_then(|row| row.try_get::<_, bool>(0).ok());
    tls::report(job.source(), "PostgreSQL", mode, encrypted, check);
}

fn class_of(type_name: &str) -> TypeClass {
    match type_name {
        "int2" | "int4" | "int8" => TypeClass::Integer,
        "numeric" | "float4" | "float8" => TypeClass::Decimal,
        "date" | "timestamp" | "timestamptz" => TypeClass::Date,
        "text" | "varchar" | "bpchar" | "name" => TypeClass::Text,
        _ => TypeClass::Other,
    }
}

#[async_trait::async_trait]
impl Database for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn as_text(&self, expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    async fn value(&mut self, slot: usize, value: &str, column: &Column) -> Result<String> {
        // The type goes into a CAST: a plain type name only.
        if !column
            .type_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!(
                "the watermark column {} has type {:?}, which cannot be compared; use a number, date or timestamp column",
                column.name,
                column.type_name
            );
        }
        // COPY takes no parameters: the value is bound into a setting of
        // this session, which the statement reads.
        let setting = format!("safetynet.watermark_{slot}");
        self.client
            .execute("SELECT set_config($1, $2, false)", &[&setting, &value])
            .await?;
        Ok(format!(
            "CAST(current_setting('{setting}') AS {})",
            column.type_name
        ))
    }

    fn total_order(&self, _columns: &[Column]) -> String {
        "CAST(src AS TEXT)".to_string()
    }

    async fn columns(&mut self, select: &str) -> Result<Vec<Column>> {
        let statement = self.client.prepare(&format!("{select} LIMIT 0")).await?;
        Ok(statement
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                type_name: c.type_().name().to_string(),
                class: class_of(c.type_().name()),
            })
            .collect())
    }

    async fn first_text(&mut self, select: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .query_opt(select, &[])
            .await?
            .and_then(|row| row.get::<_, Option<String>>(0)))
    }

    async fn copy_csv(&mut self, select: &str, path: &Path) -> Result<()> {
        let stream = self
            .client
            .copy_out(&format!(
                "COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)"
            ))
            .await?;
        pin_mut!(stream);
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(path).await?);
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        Ok(())
    }
}
