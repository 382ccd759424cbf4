//! An ext_authz server that allows every request and does nothing else: the
//! ceiling Envoy's ext_authz path itself sets, for `bench/ext_authz/run`.
//!
//! `cargo run --release --example allow_all -- 127.0.0.1:50061 [--like-keyward | --http]`
//!
//! With `--like-keyward` it answers as keyward answers an allowed request
//! (two identity headers set, the key header removed, five fields of dynamic
//! metadata) without deciding anything: what that answer costs Envoy.
//!
//! With `--http` it is instead a forward-auth server (HTTP/1.1 and h2c with
//! prior knowledge) answering every request `200` with the two identity
//! headers keyward sets: the ceiling for Envoy's `http_service` and nginx's
//! `auth_request`.

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
    let mode = args.next();
    if mode.as_deref() == Some("--http") {
        return serve_http(addr).await;
    }
    let like_keyward = mode.as_deref() == Some("--like-keyward");
    eprintln!("allow_all listening on {addr}");
    Server::builder()
        .add_service(AuthorizationServer::new(AllowAll { like_keyward }))
        .serve(addr)
        .await?;
    Ok(())
}

/// Every request allowed, over HTTP/1.1 or h2c, as keyward's forward auth
/// answers an allowed one.
async fn serve_http(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use hyper_util::{rt::TokioExecutor, rt::TokioIo, server::conn::auto::Builder};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("allow_all (HTTP) listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_request| async {
                http::Response::builder()
                    .header("x-keyward-key-id", "key_01JZ0000000000000000000000")
                    .header("x-keyward-project", "bench")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
