//! The `keyward` binary: all the work is in the library (`keyward::cli`).

/// With the `mimalloc` feature: the hot path allocates a few small buffers
/// per request (HTTP/2 frames, protobuf messages) and glibc's malloc/free
/// show in its profiles. Opt-in because mimalloc's arenas double idle RSS.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keyward::cli::main().await
}
