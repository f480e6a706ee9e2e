//! Shared by the benchmark programs: run a child process and measure it.

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
