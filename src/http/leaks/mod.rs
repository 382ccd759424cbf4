//! `POST /leaks/github`: reports from GitHub's secret-scanning partner
//! programme. GitHub finds a keyward key in a public place and POSTs
//! `[{"token", "type", "url", "source"}]`, signed with ECDSA P-256/SHA-256
//! over the raw body (`Github-Public-Key-Identifier`,
//! `Github-Public-Key-Signature`). Each live key among the tokens is
//! revoked at once ([`Admin::report_leaks`]); the answer is GitHub's
//! documented shape, `[{"token_raw", "token_type", "label"}]`, and says
//! nothing else about a token.
//!
//! Mounted only with `--leak-report-keys` (the trusted public keys, see
//! [`keys`]); without it the path is the router's `404`.
//!
//! - [`keys`]: the keys file and the signature check.
//! - [`refusal`]: why a report is not taken.

pub mod keys;
pub mod refusal;

use std::{net::SocketAddr, path::Path, sync::Arc};

use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::{
    admin::{Actor, Admin, LeakedToken, MAX_LEAKED_TOKENS, Reach},
    http::{BoxResponse, Endpoint, HttpRequest, HttpResponse, body, reply, status},
};
use keys::{KEY_ID_HEADER, KeysFileError, SIGNATURE_HEADER, TrustedKeys};
use refusal::LeakRefusal;

/// Where GitHub is told to send reports.
pub const GITHUB_PATH: &str = "/leaks/github";
/// The largest report read; GitHub sends small batches, and a body is read
/// whole before its signature can be checked.
pub const MAX_REPORT_BYTES: usize = 1 << 20;
/// The reporter's name in the metric and the revoke reason.
const REPORTER: &str = "github";

/// One token as GitHub sends it; fields it may add later are ignored.
#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(default, rename = "type")]
    token_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

#[derive(Serialize)]
struct Verdict<'a> {
    token_raw: &'a str,
    token_type: &'a str,
    label: &'static str,
}

/// The endpoint: the trusted keys and the admin operations.
pub struct GithubReports {
    keys: Arc<TrustedKeys>,
    admin: Arc<Admin>,
}

impl GithubReports {
    /// The endpoint when `keys_file` is set; a file that cannot be read or
    /// trusted stops the start, rather than leaving reports refused.
    pub fn from_file(
        keys_file: Option<&Path>,
        admin: Arc<Admin>,
    ) -> Result<Option<Self>, KeysFileError> {
        let Some(path) = keys_file else {
            return Ok(None);
        };
        let keys = TrustedKeys::load(path)?;
        tracing::info!(path = %path.display(), keys = keys.len(), "leak reports accepted at {GITHUB_PATH}");
        Ok(Some(Self {
            keys: Arc::new(keys),
            admin,
        }))
    }
}

impl Endpoint for GithubReports {
    fn call(&self, request: HttpRequest) -> BoxResponse {
        let keys = self.keys.clone();
        let admin = self.admin.clone();
        Box::pin(async move {
            match handle(&keys, &admin, request).await {
                Ok(response) => response,
                Err(refusal) => {
                    tracing::warn!(%refusal, "leak report refused");
                    let mut response =
                        reply::text(status::for_leak_refusal(&refusal), refusal.message());
                    if matches!(refusal, LeakRefusal::MethodNotAllowed) {
                        response
                            .headers_mut()
                            .insert(header::ALLOW, HeaderValue::from_static("POST"));
                    }
                    response
                }
            }
        })
    }
}

async fn handle(
    keys: &TrustedKeys,
    admin: &Admin,
    request: HttpRequest,
) -> Result<HttpResponse, LeakRefusal> {
    if request.method() != Method::POST {
        return Err(LeakRefusal::MethodNotAllowed);
    }
    let (parts, request_body) = request.into_parts();
    let header = |name: &str| parts.headers.get(name).map(HeaderValue::as_bytes);
    let (key_id, signature) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER));
    // An unsigned report is refused before its body costs anything.
    if key_id.is_none() || signature.is_none() {
        return Err(keys::SignatureError::Unsigned.into());
    }
    let raw = body::read(request_body, MAX_REPORT_BYTES).await?;
    keys.verify(key_id, signature, &raw)?;
    let reported: Vec<Reported> =
        serde_json::from_slice(&raw).map_err(|_| LeakRefusal::NotReport)?;
    if reported.len() > MAX_LEAKED_TOKENS {
        return Err(LeakRefusal::TooManyTokens);
    }
    let tokens: Vec<LeakedToken> = reported
        .into_iter()
        .map(|r| LeakedToken {
            token: r.token,
            token_type: r.token_type,
            url: r.url,
            source: r.source,
        })
        .collect();
    let actor = Actor {
        key_id: None,
        reach: Reach::AllProjects,
        source: peer(&parts.extensions).map_or_else(|| REPORTER.to_owned(), |a| a.to_string()),
    };
    let labels = admin
        .report_leaks(&actor, REPORTER, &tokens)
        .await
        .map_err(|error| LeakRefusal::Failed(tonic::Status::from(error).code()))?;
    let verdicts: Vec<Verdict<'_>> = tokens
        .iter()
        .zip(labels)
        .map(|(token, label)| Verdict {
            token_raw: &token.token,
            token_type: &token.token_type,
            label: label.as_str(),
        })
        .collect();
    let json =
        serde_json::to_vec(&verdicts).map_err(|_| LeakRefusal::Failed(tonic::Code::Internal))?;
    Ok(reply::json(StatusCode::OK, json))
}

/// The sender's address, for the audit trail.
fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}
