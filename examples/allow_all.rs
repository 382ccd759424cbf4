//! An ext_authz server that allows every request and does nothing else: the
//! ceiling Envoy's ext_authz path itself sets, for `bench/ext_authz/run`.
//!
//! `cargo run --release --example allow_all -- 127.0.0.1:50061 [--like-keyward]`
//!
//! With `--like-keyward` it answers as keyward answers an allowed request
//! (two identity headers set, the key header removed, five fields of dynamic
//! metadata) without deciding anything: what that answer costs Envoy.

use std::collections::HashMap;

use envoy_types::{
    ext_authz::v3::{
        CheckResponseExt,
        pb::{
            Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
            HeaderValue, HeaderValueOption, HttpResponse, OkHttpResponse,
        },
    },
    pb::google::protobuf::{Struct, Value, value::Kind},
};
use tonic::{Request, Response, Status, transport::Server};

struct AllowAll {
    like_keyward: bool,
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let mut response = CheckResponse::with_status(Status::ok(""));
        if self.like_keyward {
            response.http_response = Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![
                    header("x-keyward-key-id", "key_01JZ0000000000000000000000"),
                    header("x-keyward-project", "bench"),
                ],
                headers_to_remove: vec!["x-api-key".into()],
                ..Default::default()
            }));
            let fields: HashMap<String, Value> = [
                ("decision", "allow"),
                ("reason", "ok"),
                ("key_id", "key_01JZ0000000000000000000000"),
                ("project", "bench"),
                ("scopes", "orders:read"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), string(v)))
            .collect();
            response.dynamic_metadata = Some(Struct { fields });
        }
        Ok(Response::new(response))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:50061".to_owned())
        .parse()?;
    let like_keyward = args.next().as_deref() == Some("--like-keyward");
    eprintln!("allow_all listening on {addr}");
    Server::builder()
        .add_service(AuthorizationServer::new(AllowAll { like_keyward }))
        .serve(addr)
        .await?;
    Ok(())
}
