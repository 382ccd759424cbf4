//! Leak reports as GitHub sends them: a reporter with its own P-256 key,
//! the keys file that trusts it, and signed POSTs to `/leaks/github`.

use std::path::PathBuf;

use base64::Engine;
use p256::{
    ecdsa::{Signature, SigningKey, signature::Signer},
    pkcs8::{EncodePublicKey, LineEnding},
};

use super::http::{HttpResponse, http_with_body};

pub const PATH: &str = "/leaks/github";

/// Someone who signs reports: a fresh P-256 key and its identifier.
pub struct Reporter {
    pub id: String,
    key: SigningKey,
}

impl Reporter {
    pub fn new(id: &str) -> Self {
        let key = loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        Self {
            id: id.to_owned(),
            key,
        }
    }

    /// Base64 of the DER signature of `body`, as GitHub's header carries it.
    pub fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    fn pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// POSTs `body` signed by this reporter.
    pub async fn post(&self, port: u16, body: &[u8]) -> HttpResponse {
        let signature = self.sign(body);
        post(port, body, Some(&self.id), Some(&signature)).await
    }
}

/// A keys file, in GitHub's published shape, trusting `reporters`.
pub struct KeysFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl KeysFile {
    pub fn trusting(reporters: &[&Reporter]) -> Self {
        let keys: Vec<_> = reporters
            .iter()
            .map(|r| serde_json::json!({ "key_identifier": r.id, "key": r.pem(), "is_current": true }))
            .collect();
        Self::with_text(&serde_json::json!({ "public_keys": keys }).to_string())
    }

    pub fn with_text(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("github-keys.json");
        std::fs::write(&path, text).unwrap();
        Self { _dir: dir, path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// A report body: one `{token, type, url, source}` per `(token, url)`.
pub fn body(tokens: &[(&str, &str)]) -> Vec<u8> {
    let tokens: Vec<_> = tokens
        .iter()
        .map(|(token, url)| {
            serde_json::json!({ "token": token, "type": "keyward_api_key", "url": url, "source": "content" })
        })
        .collect();
    serde_json::to_vec(&tokens).unwrap()
}

/// POSTs `body` with whichever signature headers are given.
pub async fn post(
    port: u16,
    body: &[u8],
    key_id: Option<&str>,
    signature: Option<&str>,
) -> HttpResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(id) = key_id {
        headers.push(("github-public-key-identifier", id));
    }
    if let Some(signature) = signature {
        headers.push(("github-public-key-signature", signature));
    }
    http_with_body(port, "POST", PATH, &headers, body)
        .await
        .unwrap()
}

/// The labels of an answer, in order; panics unless it is exactly
/// GitHub's shape (`token_raw`, `token_type`, `label`, nothing else).
pub fn labels(response: &HttpResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{response:?}");
    let answer: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&response.body).unwrap();
    answer
        .iter()
        .map(|verdict| {
            let mut fields: Vec<&str> = verdict.keys().map(String::as_str).collect();
            fields.sort();
            assert_eq!(fields, ["label", "token_raw", "token_type"], "{verdict:?}");
            verdict["label"].as_str().unwrap().to_owned()
        })
        .collect()
}
