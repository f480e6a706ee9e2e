//! `safetynet sql`: analysts' SQL over the lake (查询), one-shot (`-c`,
//! `-f`) or as an interactive shell with line editing, history, multi-line
//! statements, `\dt`, `\d TABLE`, `\timing` and `\o FILE` export.
//!
//! Every statement is read-only checked, runs in the caller's view of the
//! lake (role and region, see `access::secure`) and is written to
//! `audit_log`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use super::args::SqlArgs;
use super::output::{self, Format};
use crate::access::audit::{AuditLog, Entry, Outcome};
use crate::access::{Principal, Role, read_only};
use crate::lake::Lake;

/// Who runs the shell: the operating-system account the process runs as
/// (from its user id, not `$USER`, which anyone can set), in the role
/// asked for.
fn principal(role: &str, region: Option<String>) -> Result<Principal> {
    if let Some(r) = &region {
        crate::access::tokens::check_region(r)?;
    }
    Ok(Principal {
        name: format!("os:{}", os_account()),
        role: Role::parse(role)?,
        region,
    })
}

/// The name of the account of the process's effective user id, from the
/// password database; `uid<n>` when it has no entry.
fn os_account() -> String {
    // SAFETY: geteuid cannot fail; getpwuid_r writes only into the buffers
    // it is given, and the name is read only when it reports success.
    let uid = unsafe { libc::geteuid() };
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() && !entry.pw_name.is_null() {
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        if let Ok(name) = name.to_str() {
            return name.to_string();
        }
    }
    format!("uid{uid}")
}

struct Shell {
    ctx: SessionContext,
    principal: Principal,
    audit: AuditLog,
    format: Format,
    timing: bool,
}

/// Write a result to CSV or Parquet, by the file's extension.
fn export(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let mut w = std::io::BufWriter::new(file);
            output::write_batches(&mut w, batches, Format::Csv)?;
        }
        Some("parquet") => {
            let schema = batches
                .first()
                .map(RecordBatch::schema)
                .context("the result has no columns to write")?;
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                file,
                schema,
                Some(crate::lake::writer_properties()),
            )?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
        _ => bail!(
            "export to {}: the file must end in .csv or .parquet",
            path.display()
        ),
    }
    Ok(())
}

impl Shell {
    /// Run the statements of `text`. The run is audited before anything is
    /// shown or written: if the audit log cannot be written, the results
    /// are not shown (the log fails closed).
    async fn run(&self, text: &str, export_to: Option<&Path>) -> Result<()> {
        self.run_bound(text, &[], export_to).await
    }

    /// As [`Self::run`], with `$1`, … in `text` bound to `values`: how the
    /// shell's own catalog queries take what the user typed.
    async fn run_bound(&self, text: &str, values: &[&str], export_to: Option<&Path>) -> Result<()> {
        let started = Instant::now();
        let work = async {
            if export_to.is_some() && !self.principal.can_export() {
                bail!(
                    "role {} may not export results (导出需 analyst 或 admin 角色)",
                    self.principal.role.name()
                );
            }
            let statements = read_only::check(text, &self.principal)?;
            let mut results = Vec::new();
            for statement in statements {
                let mut batches = self
                    .ctx
                    .sql_with_options(&statement, read_only::sql_options())
                    .await?
                    .with_param_values(crate::lake::query::text_values(values))?
                    .collect()
                    .await?;
                if read_only::is_explain(&statement) && !self.principal.raw_values() {
                    batches = read_only::scrub_plan_batches(batches)?;
                }
                results.push(batches);
            }
            Ok(results)
        };
        // Ctrl-C while a statement runs cancels it (dropping its streams
        // stops the work); at the prompt it clears the line.
        let result: Result<Vec<Vec<RecordBatch>>> = tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("statement cancelled (Ctrl-C)")),
        };
        let rows: usize = result.as_ref().map_or(0, |results| {
            results.iter().flatten().map(RecordBatch::num_rows).sum()
        });
        let entry = Entry {
            at: chrono::Utc::now(),
            interface: "sql",
            user: self.principal.name.clone(),
            role: self.principal.role.name().into(),
            client: "local shell".into(),
            // As the SQL endpoint records a prepared statement's values.
            request: if values.is_empty() {
                text.trim().to_string()
            } else {
                format!("{} -- parameters: [{}]", text.trim(), values.join(", "))
            },
            code: 0,
            rows: rows as i64,
            outcome: if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Error
            },
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            millis: started.elapsed().as_millis() as i64,
        };
        self.audit.record(entry).await.context(
            "the statement is not on record, so its result is not shown (审计日志无法写入)",
        )?;
        for batches in result? {
            match export_to {
                Some(path) => {
                    export(path, &batches)?;
                    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    eprintln!("{n} row(s) written to {}", path.display());
                }
                None => output::print_batches(&batches, self.format)?,
            }
        }
        if self.timing {
            eprintln!("Time: {:.3} s", started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// `\dt`, `\d TABLE`, `\timing`, `\?`; returns false for `\q`.
    async fn meta(&mut self, line: &str, export_next: &mut Option<PathBuf>) -> Result<bool> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("\\q"), _) => return Ok(false),
            (Some("\\dt") | Some("\\d"), None) => {
                self.run(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
                    None,
                )
                .await?;
            }
            (Some("\\d"), Some(table)) => {
                self.run_bound(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    &[table],
                    None,
                )
                .await?;
            }
            (Some("\\timing"), _) => {
                self.timing = !self.timing;
                eprintln!("Timing is {}.", if self.timing { "on" } else { "off" });
            }
            (Some("\\o"), Some(file)) => {
                *export_next = Some(PathBuf::from(file));
                eprintln!("the next result goes to {file}");
            }
            _ => eprintln!(
                "\\dt  list tables        \\d TABLE  columns of a table\n\
                 \\timing  toggle timing   \\o FILE   send the next result to FILE (.csv or .parquet)\n\
                 \\q  quit                 statements end with ;"
            ),
        }
        Ok(true)
    }

    async fn interactive(&mut self) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new()?;
        let history = std::env::var("HOME")
            .map(|h| PathBuf::from(h).join(".safetynet_history"))
            .ok();
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        eprintln!(
            "safetynet SQL as {} ({}{}); \\? for help, \\q to quit",
            self.principal.name,
            self.principal.role.name(),
            self.principal
                .region
                .as_deref()
                .map(|r| format!(", region {r}"))
                .unwrap_or_default()
        );
        let mut buffer = String::new();
        let mut export_next: Option<PathBuf> = None;
        loop {
            let prompt = if buffer.is_empty() {
                "safetynet=> "
            } else {
                "safetynet-> "
            };
            let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
                Ok(l) => l,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            };
            let _ = editor.add_history_entry(line.as_str());
            if buffer.is_empty() && line.trim_start().starts_with('\\') {
                match self.meta(line.trim(), &mut export_next).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        continue;
                    }
                }
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if !line.trim_end().ends_with(';') {
                continue;
            }
            let text = std::mem::take(&mut buffer);
            let target = export_next.take();
            if let Err(e) = self.run(&text, target.as_deref()).await {
                eprintln!("error: {e:#}");
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }
}

pub async fn sql(args: SqlArgs) -> Result<ExitCode> {
    let lake = Lake::open(&args.lake).await?;
    let principal = principal(&args.role, args.region)?;
    let access = crate::access::Access::new(
        lake.clone(),
        &args.schemas,
        crate::config::AccessConfig::default(),
        std::time::Duration::ZERO,
    )?;
    let ctx = access.session(&principal, None).await?;
    let mut shell = Shell {
        ctx,
        principal,
        audit: AuditLog::start(lake.clone()),
        format: args.format,
        timing: false,
    };
    let text = match (args.command, args.file) {
        (Some(c), _) => c,
        (None, Some(f)) => {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => {
            shell.interactive().await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    shell.run(&text, args.out.as_deref()).await?;
    Ok(ExitCode::SUCCESS)
}
