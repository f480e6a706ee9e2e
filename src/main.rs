// mimalloc, not glibc's malloc: rows made on one thread and dropped on
// another made the threads of an ingest wait on glibc's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    safetynet::cli::main()
}
