//! Progress on a terminal: a spinner with row counts while files are read,
//! and one with the elapsed time for work that counts no rows (linking,
//! the rules). indicatif draws them only on a terminal; elsewhere the log
//! lines tell the story.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::Progress;

/// The terminal's spinners.
#[derive(Default)]
pub struct Spinners {
    files: Mutex<Option<ProgressBar>>,
    work: Mutex<Option<ProgressBar>>,
}

fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(template).expect("static template"));
    bar
}

impl Spinners {
    /// Clear whatever is still drawn.
    pub fn finish(&self) {
        for slot in [&self.files, &self.work] {
            if let Some(bar) = slot.lock().ok().and_then(|mut b| b.take()) {
                bar.finish_and_clear();
            }
        }
    }
}

impl Progress for Spinners {
    fn file_started(&self, _source: &str, file: &str) {
        if let Ok(mut slot) = self.files.lock() {
            let bar = slot.get_or_insert_with(|| {
                spinner("{spinner} {prefix} {human_pos} rows ({per_sec}) {elapsed}")
            });
            bar.set_prefix(file.to_string());
            bar.set_position(0);
        }
    }

    fn rows(&self, rows: u64) {
        if let Some(bar) = self.files.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            bar.set_position(rows);
        }
    }

    fn work_started(&self, what: &str) {
        if let Some(bar) = self.files.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
        if let Ok(mut slot) = self.work.lock() {
            let bar = spinner("{spinner} {msg} {elapsed}");
            bar.set_message(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            *slot = Some(bar);
        }
    }

    fn work_finished(&self) {
        if let Some(bar) = self.work.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}
