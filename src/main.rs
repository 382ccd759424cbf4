//! The `keyward` binary: all the work is in the library (`keyward::cli`).

/// mimalloc: the hot path allocates a few small buffers per request (HTTP/2
/// frames, protobuf messages), and glibc's malloc/free showed as a tenth of
/// the server's CPU in profiles; it also fragments less under a large L1.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keyward::cli::main().await
}
