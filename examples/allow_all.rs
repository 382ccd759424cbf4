//! An ext_authz server that allows every request and does nothing else: the
//! ceiling Envoy's ext_authz path itself sets, for `bench/ext_authz/run`.
//!
//! `cargo run --release --example allow_all -- 127.0.0.1:50061`

use envoy_types::ext_authz::v3::{
    CheckResponseExt,
    pb::{Authorization, AuthorizationServer, CheckRequest, CheckResponse},
};
use tonic::{Request, Response, Status, transport::Server};

struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse::with_status(Status::ok(""))))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50061".to_owned())
        .parse()?;
    eprintln!("allow_all listening on {addr}");
    Server::builder()
        .add_service(AuthorizationServer::new(AllowAll))
        .serve(addr)
        .await?;
    Ok(())
}
