//! safetynet: departmental data screening for return-to-poverty monitoring
//! (防止返贫监测部门数据筛查). It ingests what four departments send and the
//! monitoring roster into a lake of Delta tables, links every record to a
//! roster person and household, raises early warnings, and delivers them.
//!
//! The crate is layered; a module uses its own layer and those below it,
//! never one above (a unit test, `layers`, checks this on the source):
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | frontends | [`cli`], [`api`], [`sql_endpoint`], [`console`] | parsing requests and arguments, printing and rendering pages |
//! | service | [`serve`] | the long-running service: schedule, API and console, SQL endpoint, delivery loop, query runtime |
//! | jobs | [`pipeline`] | [`pipeline::run`] (the whole job, returning a report), the run lock, the `runs` table, verifications |
//! | stages | [`ingest`], [`link`], [`warn`], [`deliver`] | one stage each; they return report structs and never print |
//! | policy | [`access`] | roles, region scopes, masking, the read-only gate, login throttling, capacity limits, tokens, the audit log: the one way any frontend gets a session |
//! | engine | [`lake`], [`functions`], [`distributed`] | Delta tables; the one place a DataFusion session is built; every SQL function with one `register_all`; the engine that runs plans (local, or on `safetynet worker` processes) |
//! | foundations | [`identity`], [`config`], [`error`] | pure rules for ID numbers, names, dates, amounts and masks; the files a data office edits; the errors callers branch on |
//!
//! [`generate`] stands beside the stack: synthetic extracts with ground
//! truth, for tests and benchmarks. [`failpoint`] holds the test hooks
//! that only builds with the `test-hooks` feature contain.
//!
//! Every public item is documented: `missing_docs` warns, and CI's
//! `cargo clippy -- -D warnings` turns the warning into a failure. The
//! command line's own modules are private; its public face is
//! [`cli::main`].

#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod deliver;
pub mod distributed;
pub mod error;
pub mod failpoint;
pub mod functions;
pub mod generate;
pub mod identity;
pub mod ingest;
pub mod lake;
pub mod link;
pub mod pipeline;
pub mod serve;
pub mod sql_endpoint;
pub mod warn;

#[cfg(test)]
mod layers {
    //! The layering of `ARCHITECTURE.md`, checked on the source: no module
    //! names a module of a layer above its own.

    /// Layers, lowest first. A module may use its own layer and those below.
    /// `generate` stands beside the stack: it uses the foundations only, and
    /// only the command line uses it.
    const LAYERS: &[&[&str]] = &[
        &["identity", "config", "error", "failpoint"],
        &["lake", "functions", "distributed"],
        &["access"],
        &["ingest", "link", "warn", "deliver"],
        &["pipeline"],
        &["api", "sql_endpoint", "console"],
        &["serve"],
        &["cli"],
    ];

    fn layer(module: &str) -> Option<usize> {
        if module == "generate" {
            return Some(0);
        }
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_imports_one_above_it() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let own = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let Some(own_layer) = layer(&own) else {
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for part in code.split("crate::").skip(1) {
                    let used: String = part
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let Some(used_layer) = layer(&used) else {
                        continue;
                    };
                    let beside = own == "generate" && used_layer > 0;
                    // The generator is a tool the command line runs.
                    let generator = used == "generate" && own != "cli";
                    if used != own && (used_layer > own_layer || beside || generator) {
                        wrong.push(format!(
                            "{}:{}: {own} uses crate::{used}",
                            relative.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports across layers:\n{}",
            wrong.join("\n")
        );
    }
}
