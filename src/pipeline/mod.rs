//! Running a pipeline file, the whole job: ingest (roster first, so the
//! roster tables exist before anything links to them) → link → warn →
//! deliver, one run at a time per lake (`lock`), every stage recorded in
//! the `runs` table (`runs`). [`run`] returns a [`RunReport`]; frontends
//! print it, the service logs it.

pub mod lock;
pub mod runs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::config::Pipeline;
use crate::config::pipeline::PipelineSource;
use crate::deliver::DeliveryReport;
use crate::ingest::{self, FileOutcome, IngestOptions};
use crate::lake::Lake;
use crate::lake::query::{rows_of, scalar_i64, strings_of};
use crate::lake::tables::{ROSTER_SOURCE, WARNINGS};
use crate::link::LinkReport;
use crate::warn::WarnReport;
use lock::RunLock;
use runs::{RunLog, StageCounts};

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Files and pulls into `staged_*`, `quarantine_*` and `batches`.
    Ingest,
    /// Department records to roster people.
    Link,
    /// Rules, assessment and warning state.
    Warn,
    /// Push to the monitoring system.
    Deliver,
}

impl Stage {
    /// The stage's name in the `runs` table.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Link => "link",
            Stage::Warn => "warn",
            Stage::Deliver => "deliver",
        }
    }
}

/// What a frontend shows while a run works. Every method has a default
/// that shows nothing.
pub trait Progress: Sync {
    /// A file of `source` starts.
    fn file_started(&self, _source: &str, _file: &str) {}
    /// Rows of the current file read so far.
    fn rows(&self, _rows: u64) {}
    /// A piece of work without row counts starts (linking one source, the rules).
    fn work_started(&self, _what: &str) {}
    /// That work ended.
    fn work_finished(&self) {}
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {}

/// How to run.
pub struct RunOptions<'a> {
    /// The date the warning stage looks from.
    pub as_of: NaiveDate,
    /// How long to wait for another run to release the lake.
    pub wait: Duration,
    /// Who holds the lock, as `runs` and other waiters see it.
    pub holder: String,
    /// Set to stop after the running stage (the next run continues).
    pub stop: Arc<AtomicBool>,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

/// A stage that failed, and why.
#[derive(Debug)]
pub struct StageFailure {
    /// The stage.
    pub stage: Stage,
    /// Its error, with context.
    pub error: anyhow::Error,
}

/// What one run did.
#[derive(Debug)]
pub struct RunReport {
    /// The run's id in `runs`.
    pub run_id: String,
    /// One outcome per input file.
    pub ingest: Vec<FileOutcome>,
    /// One report per source linked this run.
    pub links: Vec<LinkReport>,
    /// The warning stage, when it ran.
    pub warn: Option<WarnReport>,
    /// The push, when the pipeline has a `[delivery]` section.
    pub delivery: Option<DeliveryReport>,
    /// The stage after which the run stopped because it was asked to.
    pub stopped_after: Option<Stage>,
    /// The stage that failed; the run ended there.
    pub failure: Option<StageFailure>,
}

impl RunReport {
    /// True when every stage ran and every file was taken.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.ingest.iter().all(|o| o.result.is_ok())
    }
}

/// Sources in run order: the roster first, the rest as listed.
pub fn ordered_sources(pipeline: &Pipeline) -> Vec<&PipelineSource> {
    let mut sources: Vec<&PipelineSource> = pipeline.sources.iter().collect();
    sources.sort_by_key(|s| s.name != ROSTER_SOURCE);
    sources
}

/// Run every stage of `pipeline` on `lake`, holding the lake's run lock.
/// Fails only when the lock cannot be taken (see `Error::LockHeld`);
/// a stage's failure is in the report, recorded in `runs`, and redone by
/// the next run (ingest skips files already in, link relinks sources whose
/// links are older than their data, warn changes only what changed).
pub async fn run(pipeline: &Pipeline, lake: &Lake, options: &RunOptions<'_>) -> Result<RunReport> {
    let lock = RunLock::acquire(lake, &options.holder, options.wait).await?;
    crate::failpoint::pause_after_lock().await;
    let report = run_stages(pipeline, lake, options).await;
    lock.release().await?;
    Ok(report)
}

async fn run_stages(pipeline: &Pipeline, lake: &Lake, options: &RunOptions<'_>) -> RunReport {
    let log = RunLog::new(lake, &pipeline.name);
    tracing::info!(run = %log.run_id, "run started");
    let mut report = RunReport {
        run_id: log.run_id.clone(),
        ingest: Vec::new(),
        links: Vec::new(),
        warn: None,
        delivery: None,
        stopped_after: None,
        failure: None,
    };
    for stage in [Stage::Ingest, Stage::Link, Stage::Warn, Stage::Deliver] {
        let started = chrono::Utc::now();
        let outcome = match stage {
            Stage::Ingest => ingest_stage(pipeline, lake, options, &mut report).await,
            Stage::Link => link_stage(pipeline, lake, options, &mut report).await,
            Stage::Warn => warn_stage(pipeline, lake, options, &mut report).await,
            Stage::Deliver => match &pipeline.delivery {
                Some(config) => deliver_stage(config, lake, options, &mut report).await,
                None => continue,
            },
        };
        let recorded = outcome
            .error
            .as_ref()
            .map(|e| format!("{e:#}"))
            .or(outcome.note);
        let recorded = log
            .record(stage.name(), started, &outcome.counts, recorded)
            .await;
        let error = match (outcome.error, recorded) {
            (Some(e), _) => Some(e.context(format!("stage {} failed", stage.name()))),
            (None, Err(e)) => Some(e),
            (None, Ok(())) => None,
        };
        if let Some(error) = error {
            report.failure = Some(StageFailure { stage, error });
            return report;
        }
        if stage == Stage::Link {
            crate::failpoint::hit("run:after-link");
        }
        if stage != Stage::Deliver && options.stop.load(Ordering::SeqCst) {
            tracing::warn!(
                "shutting down after stage {}; the next run continues from here",
                stage.name()
            );
            report.stopped_after = Some(stage);
            return report;
        }
    }
    report
}

/// How one stage ended.
#[derive(Default)]
struct StageOutcome {
    counts: StageCounts,
    /// Ends the run.
    error: Option<anyhow::Error>,
    /// Recorded in `runs` as the stage's error, but the run goes on (files
    /// refused, items dead-lettered).
    note: Option<String>,
}

/// Ingest every source. A refused file does not stop the others; the
/// refusals are the stage's note.
async fn ingest_stage(
    pipeline: &Pipeline,
    lake: &Lake,
    options: &RunOptions<'_>,
    report: &mut RunReport,
) -> StageOutcome {
    let ingest: Result<()> = async {
        for source in ordered_sources(pipeline) {
            let schema = pipeline.schema_for(source)?;
            let inputs: Vec<String> = source.inputs.iter().map(|i| pipeline.resolve(i)).collect();
            let ingest_options = IngestOptions {
                encoding: source.encoding.clone(),
            };
            let feed = match &source.pull {
                Some(pull) => Feed::Pull(pull),
                None => Feed::Files(&inputs),
            };
            let outcomes = ingest_with_progress(
                lake,
                Arc::new(schema),
                feed,
                &ingest_options,
                options.progress,
            )
            .await?;
            report.ingest.extend(outcomes);
        }
        Ok(())
    }
    .await;
    let mut counts = StageCounts::default();
    for r in report.ingest.iter().filter_map(|o| o.result.as_ref().ok()) {
        counts.rows_in += r.rows_read as i64;
        counts.rows_out += r.rows_staged as i64;
        counts.quarantined += r.rows_quarantined as i64;
    }
    let refused: Vec<String> = report
        .ingest
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e:#}", o.file))
        })
        .collect();
    StageOutcome {
        counts,
        error: ingest.err(),
        note: (!refused.is_empty()).then(|| refused.join("; ")),
    }
}

/// Link the sources whose links are older than their data.
async fn link_stage(
    pipeline: &Pipeline,
    lake: &Lake,
    options: &RunOptions<'_>,
    report: &mut RunReport,
) -> StageOutcome {
    let link: Result<()> = async {
        let settings = crate::link::settings::SettingsFile::load(&pipeline.linkage_path())?;
        let schemas = pipeline.schemas_dir();
        for source in crate::link::linkable_sources(lake, &schemas, &settings).await? {
            if crate::link::needs_linking(lake, &source).await? {
                tracing::info!(source = %source, "linking");
                options
                    .progress
                    .work_started(&format!("linking 关联 {source}"));
                let linked =
                    crate::link::link_source(lake, &schemas, &settings, &source, false).await;
                options.progress.work_finished();
                report.links.push(linked?);
            }
        }
        Ok(())
    }
    .await;
    let quality = crate::link::history::Quality::combined(report.links.iter().map(|r| &r.quality));
    let (calibrated_precision, calibrated_recall) = crate::link::calibrate::Calibration::combined(
        report.links.iter().filter_map(|r| r.calibration.as_ref()),
    );
    let counts = StageCounts {
        rows_in: report.links.iter().map(|r| r.records).sum(),
        linked: quality.linked,
        review: quality.review,
        unlinked: quality.unlinked,
        expected_precision: quality.expected_precision,
        expected_recall: quality.expected_recall(),
        calibrated_precision_without_id: calibrated_precision,
        calibrated_recall_without_id: calibrated_recall,
        ..StageCounts::default()
    };
    StageOutcome {
        counts,
        error: link.err(),
        note: None,
    }
}

async fn warn_stage(
    pipeline: &Pipeline,
    lake: &Lake,
    options: &RunOptions<'_>,
    report: &mut RunReport,
) -> StageOutcome {
    tracing::info!(as_of = %options.as_of, "raising warnings");
    options.progress.work_started("warning rules 预警规则");
    let warn = crate::warn::run(lake, &pipeline.warn_config(), options.as_of).await;
    options.progress.work_finished();
    match warn {
        Ok(w) => {
            let counts = StageCounts {
                raised: w.raised as i64,
                reopened: w.reopened as i64,
                updated: w.updated as i64,
                rows_out: (w.raised + w.reopened + w.updated) as i64,
                ..Default::default()
            };
            report.warn = Some(w);
            StageOutcome {
                counts,
                ..Default::default()
            }
        }
        Err(e) => StageOutcome {
            error: Some(e),
            ..Default::default()
        },
    }
}

/// One push pass. Items that fail stay in the outbox for the next pass
/// (serve retries them); rejected and dead-lettered ones are the note.
async fn deliver_stage(
    config: &crate::config::DeliveryConfig,
    lake: &Lake,
    options: &RunOptions<'_>,
    report: &mut RunReport,
) -> StageOutcome {
    options.progress.work_started("delivering 推送");
    let result = crate::deliver::pass(lake, config, Duration::ZERO).await;
    options.progress.work_finished();
    match result {
        Ok(r) => {
            let outcome = StageOutcome {
                counts: StageCounts {
                    delivered: r.delivered as i64,
                    ..Default::default()
                },
                error: None,
                note: (r.rejected + r.dead > 0).then(|| {
                    format!(
                        "{} item(s) rejected, {} dead-lettered: {}",
                        r.rejected,
                        r.dead,
                        r.errors.join("; ")
                    )
                }),
            };
            report.delivery = Some(r);
            outcome
        }
        Err(e) => StageOutcome {
            error: Some(e),
            ..Default::default()
        },
    }
}

/// Record a verification (what staff found on a visit), holding the run
/// lock for at most `wait`, since runs rewrite warnings too. The CLI, the
/// API and the console all record verifications through here.
pub async fn verify(
    lake: &Lake,
    verification: &crate::warn::Verification,
    holder: &str,
    wait: Duration,
) -> Result<crate::warn::Verified> {
    let lock = RunLock::acquire(lake, holder, wait).await?;
    let result = crate::warn::verify(lake, verification).await;
    lock.release().await?;
    result
}

/// Where one source's rows come from.
pub enum Feed<'a> {
    /// Files, globs, directories or URLs.
    Files(&'a [String]),
    /// A pull from the department's system.
    Pull(&'a crate::config::PullConfig),
}

/// Ingest one source's inputs or pull, telling `progress` about each file
/// or pulled window.
pub async fn ingest_with_progress(
    lake: &Lake,
    schema: Arc<crate::config::SourceSchema>,
    feed: Feed<'_>,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<Vec<FileOutcome>> {
    let source = schema.name.clone();
    let on_file = |name: &str| {
        tracing::info!(source = %source, file = %name, "ingesting");
        progress.file_started(&source, name);
    };
    let rows = |n: u64| progress.rows(n);
    match feed {
        Feed::Files(inputs) => {
            ingest::ingest_source(lake, schema, inputs, options, &on_file, &rows).await
        }
        Feed::Pull(pull) => {
            ingest::pull::pull_source(lake, schema, pull, options, &on_file, &rows).await
        }
    }
}

/// What the lake holds: rows per table, and the most common quarantine
/// reasons, so a clerk sees at once what to fix.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Overview {
    /// Where the lake is.
    pub lake: String,
    /// (table, rows), by name.
    pub tables: Vec<(String, i64)>,
    /// (quarantine table, reasons, rows), the five most common per table.
    pub quarantine_reasons: Vec<(String, String, i64)>,
}

/// The lake's [`Overview`].
pub async fn overview(lake: &Lake) -> Result<Overview> {
    let ctx = lake.session().await?;
    let mut out = Overview {
        lake: lake.root().to_string(),
        ..Default::default()
    };
    for name in lake.table_names().await? {
        if !ctx.table_exist(name.as_str())? {
            continue;
        }
        let n = scalar_i64(&ctx, &format!("SELECT count(*) FROM {name}")).await?;
        out.tables.push((name.clone(), n));
        if crate::lake::tables::source_of_quarantine(&name).is_none() {
            continue;
        }
        let sql = format!(
            "SELECT reasons, count(*) AS n FROM {name} GROUP BY reasons ORDER BY n DESC, reasons LIMIT 5"
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let texts = strings_of(batch.column(0))?;
            let counts = strings_of(batch.column(1))?;
            for (text, n) in texts.into_iter().zip(counts) {
                out.quarantine_reasons.push((
                    name.clone(),
                    text.unwrap_or_default(),
                    n.and_then(|n| n.parse().ok()).unwrap_or(0),
                ));
            }
        }
    }
    Ok(out)
}

/// One of the highest-scoring open warnings, with its evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopWarning {
    /// The warning's id.
    pub warning_id: String,
    /// Its household.
    pub household_id: String,
    /// The household's village code.
    pub village_code: String,
    /// 因病, 因学, …
    pub risk_type: String,
    /// high, medium or low.
    pub severity: String,
    /// The score, as text.
    pub score: String,
    /// The records behind it.
    pub evidence: Vec<crate::warn::status::Evidence>,
}

/// The `n` highest-scoring open warnings.
pub async fn top_warnings(lake: &Lake, n: usize) -> Result<Vec<TopWarning>> {
    let ctx = lake.session_with(&[WARNINGS]).await?;
    if !ctx.table_exist(WARNINGS)? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT warning_id, household_id, village_code, risk_type, severity, CAST(score AS VARCHAR) AS score_text, evidence
         FROM {WARNINGS} WHERE status = 'open' ORDER BY score DESC, warning_id LIMIT {n}"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    rows_of(&batches)?
        .into_iter()
        .map(|row| {
            let cell = |c: &str| row.get(c).cloned().unwrap_or_default();
            Ok(TopWarning {
                warning_id: cell("warning_id"),
                household_id: cell("household_id"),
                village_code: cell("village_code"),
                risk_type: cell("risk_type"),
                severity: cell("severity"),
                score: cell("score_text"),
                evidence: serde_json::from_str(&cell("evidence")).with_context(|| {
                    format!("bad evidence JSON in warning {}", cell("warning_id"))
                })?,
            })
        })
        .collect()
}
