//! Shared by the benchmark programs: their arguments, the generated health
//! extract, and running a child process to measure it.
// Each benchmark program compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Run a child to completion: (seconds, its own peak resident set in MiB,
/// stdout). Panics with the command and its output when it fails.
// The child is reaped by wait4, which also reports its resource use.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut Command) -> (f64, f64, String) {
    use std::io::Read;
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with pointers to locals; it reports
    // that child's own maximum resident set.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    let text = reader.join().unwrap_or_default();
    assert!(
        waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: {text}"
    );
    (seconds, usage.ru_maxrss as f64 / 1024.0, text)
}

/// `--rows N` (repeatable) and `--dir D`; other arguments (cargo passes
/// `--bench`) are ignored.
pub struct Arguments {
    pub rows: Vec<usize>,
    pub dir: PathBuf,
}

/// The benchmark's arguments; `dir` defaults to `default_dir` under the
/// system's temporary directory.
pub fn arguments(default_dir: &str) -> Arguments {
    let args: Vec<String> = std::env::args().collect();
    let mut parsed = Arguments {
        rows: Vec::new(),
        dir: std::env::temp_dir().join(default_dir),
    };
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--rows" => {
                parsed.rows.push(args[i + 1].parse().expect("--rows N"));
                i += 1;
            }
            "--dir" => {
                parsed.dir = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    parsed
}

/// `data/health.csv` with `rows` generated health records (seed 1), made
/// by `safetynet generate` unless it is there already.
pub fn health_extract(bin: &str, data: &Path, rows: usize) -> PathBuf {
    let csv = data.join("health.csv");
    if !csv.exists() {
        let households = (rows / 14 * 10).clamp(1_000, 200_000);
        let status = Command::new(bin)
            .args(["generate", "--only", "health"])
            .args(["--households", &households.to_string()])
            .args(["--rows", &format!("health={rows}"), "--seed", "1", "--out"])
            .arg(data)
            .stdout(Stdio::null())
            .status()
            .expect("generate");
        assert!(status.success());
    }
    csv
}
