//! The `keyward` binary: all the work is in the library (`keyward::cli`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keyward::cli::main().await
}
