// mimalloc, not glibc's malloc: rows made on one thread and dropped on
// another made the threads of an ingest wait on glibc's arena locks.
// Built without transparent huge pages (feature `no_thp`): each fresh 2 MiB
// page the kernel zeroes, and compacts memory to find, cost an ingest of
// a million rows 1–3 s of system time, varying from run to run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    safetynet::cli::main()
}
