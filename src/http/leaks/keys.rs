//! The public keys a leak report must be signed with, and the check of a
//! signature.
//!
//! The file is in the shape GitHub publishes its secret-scanning keys
//! (`https://api.github.com/meta/public_keys/secret_scanning`):
//! `{"public_keys": [{"key_identifier", "key" (PEM SPKI), "is_current"}]}`.
//! Keyward never fetches it: a deployment must not depend on reaching
//! GitHub, and trusting a key is the operator's decision. Every listed key
//! is trusted, current or not, since GitHub signs with a retiring key for a
//! while after it publishes a new one.

use std::{collections::HashMap, path::Path};

use base64::Engine;
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::Verifier},
    pkcs8::DecodePublicKey,
};
use serde::Deserialize;

/// The headers GitHub signs a report with.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// The longest key identifier or signature header read; GitHub's are a
/// 64-hex-digit identifier and a ~100-byte base64 DER signature.
const MAX_HEADER: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("cannot read the leak-report keys file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the leak-report keys file {path} is not {{\"public_keys\": [...]}} JSON: {source}")]
    NotJson {
        path: String,
        source: serde_json::Error,
    },
    #[error("the leak-report keys file {path} lists no key")]
    Empty { path: String },
    #[error("key {identifier:?} in the leak-report keys file {path} is not a PEM P-256 public key")]
    BadKey { path: String, identifier: String },
    #[error("key {identifier:?} is listed twice in the leak-report keys file {path}")]
    Duplicate { path: String, identifier: String },
}

/// Why a report's signature was not accepted. The caller gets one answer
/// for all of them (401); the variant goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the report is not signed (no key identifier or signature header)")]
    Unsigned,
    #[error("the report names a key that is not trusted")]
    UnknownKey,
    #[error("the signature is not base64 DER ECDSA")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<PublicKeyEntry>,
}

/// `is_current` and any other field are ignored: every listed key is
/// trusted.
#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    key: String,
}

/// The trusted keys, by identifier.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl TrustedKeys {
    pub fn load(path: &Path) -> Result<Self, KeysFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// `path` names the file in errors only.
    pub fn parse(text: &str, path: &str) -> Result<Self, KeysFileError> {
        let file: KeysFile =
            serde_json::from_str(text).map_err(|source| KeysFileError::NotJson {
                path: path.to_owned(),
                source,
            })?;
        if file.public_keys.is_empty() {
            return Err(KeysFileError::Empty {
                path: path.to_owned(),
            });
        }
        let mut keys = HashMap::new();
        for entry in file.public_keys {
            let key = VerifyingKey::from_public_key_pem(entry.key.trim()).map_err(|_| {
                KeysFileError::BadKey {
                    path: path.to_owned(),
                    identifier: entry.key_identifier.clone(),
                }
            })?;
            if keys.insert(entry.key_identifier.clone(), key).is_some() {
                return Err(KeysFileError::Duplicate {
                    path: path.to_owned(),
                    identifier: entry.key_identifier,
                });
            }
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature` (base64 of a DER ECDSA signature, as in the
    /// header) is the key `identifier`'s signature of `body`, byte for byte.
    pub fn verify(
        &self,
        identifier: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(SignatureError::Unsigned);
        };
        if identifier.len() > MAX_HEADER || signature.len() > MAX_HEADER {
            return Err(SignatureError::Malformed);
        }
        let key = std::str::from_utf8(identifier)
            .ok()
            .and_then(|id| self.keys.get(id.trim()))
            .ok_or(SignatureError::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim_ascii())
            .map_err(|_| SignatureError::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use p256::{
        ecdsa::{SigningKey, signature::Signer},
        pkcs8::{EncodePublicKey, LineEnding},
    };

    use super::*;

    fn signing_key() -> SigningKey {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    fn pem(key: &SigningKey) -> String {
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn file(entries: &[(&str, &SigningKey)]) -> String {
        let keys: Vec<_> = entries
            .iter()
            .map(|(id, key)| {
                serde_json::json!({ "key_identifier": id, "key": pem(key), "is_current": true })
            })
            .collect();
        serde_json::json!({ "public_keys": keys }).to_string()
    }

    fn sign(key: &SigningKey, body: &[u8]) -> Vec<u8> {
        let signature: Signature = key.sign(body);
        base64::engine::general_purpose::STANDARD
            .encode(signature.to_der().as_bytes())
            .into_bytes()
    }

    const BODY: &[u8] = br#"[{"token":"x","type":"keyward_api_key","url":"https://github.com/a/b","source":"content"}]"#;

    #[test]
    fn a_good_signature_by_a_listed_key_is_accepted() {
        let (old, new) = (signing_key(), signing_key());
        let keys = TrustedKeys::parse(&file(&[("old", &old), ("new", &new)]), "f").unwrap();
        assert_eq!(keys.len(), 2);
        for (id, key) in [("old", &old), ("new", &new)] {
            let signature = sign(key, BODY);
            assert_eq!(
                keys.verify(Some(id.as_bytes()), Some(&signature), BODY),
                Ok(())
            );
        }
    }

    #[test]
    fn another_keys_signature_is_refused() {
        let (trusted, stranger) = (signing_key(), signing_key());
        let keys = TrustedKeys::parse(&file(&[("k", &trusted)]), "f").unwrap();
        let signature = sign(&stranger, BODY);
        assert_eq!(
            keys.verify(Some(b"k"), Some(&signature), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let key = signing_key();
        let keys = TrustedKeys::parse(&file(&[("k", &key)]), "f").unwrap();
        let signature = sign(&key, BODY);
        let mut tampered = BODY.to_vec();
        tampered[12] ^= 1;
        assert_eq!(
            keys.verify(Some(b"k"), Some(&signature), &tampered),
            Err(SignatureError::Mismatch)
        );
        // One byte more, too: the signature covers the raw body exactly.
        tampered = BODY.to_vec();
        tampered.push(b'\n');
        assert_eq!(
            keys.verify(Some(b"k"), Some(&signature), &tampered),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_headers_are_unsigned() {
        let key = signing_key();
        let keys = TrustedKeys::parse(&file(&[("k", &key)]), "f").unwrap();
        let signature = sign(&key, BODY);
        assert_eq!(
            keys.verify(None, Some(&signature), BODY),
            Err(SignatureError::Unsigned)
        );
        assert_eq!(
            keys.verify(Some(b"k"), None, BODY),
            Err(SignatureError::Unsigned)
        );
    }

    #[test]
    fn an_unknown_key_identifier_is_refused() {
        let key = signing_key();
        let keys = TrustedKeys::parse(&file(&[("k", &key)]), "f").unwrap();
        let signature = sign(&key, BODY);
        assert_eq!(
            keys.verify(Some(b"other"), Some(&signature), BODY),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            keys.verify(Some(&[0xff, 0xfe]), Some(&signature), BODY),
            Err(SignatureError::UnknownKey)
        );
    }

    #[test]
    fn a_signature_that_is_not_base64_der_is_malformed() {
        let key = signing_key();
        let keys = TrustedKeys::parse(&file(&[("k", &key)]), "f").unwrap();
        for bad in [&b"not base64!"[..], b"AAAA", &[b'A'; 600]] {
            assert_eq!(
                keys.verify(Some(b"k"), Some(bad), BODY),
                Err(SignatureError::Malformed)
            );
        }
    }

    #[test]
    fn malformed_key_files_are_refused_with_the_reason() {
        let key = signing_key();
        let bad_pem = serde_json::json!({ "public_keys": [
            { "key_identifier": "k", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }
        ]})
        .to_string();
        assert!(matches!(
            TrustedKeys::parse(&bad_pem, "f"),
            Err(KeysFileError::BadKey { identifier, .. }) if identifier == "k"
        ));
        assert!(matches!(
            TrustedKeys::parse("[]", "f"),
            Err(KeysFileError::NotJson { .. })
        ));
        assert!(matches!(
            TrustedKeys::parse(r#"{"public_keys": []}"#, "f"),
            Err(KeysFileError::Empty { .. })
        ));
        assert!(matches!(
            TrustedKeys::parse(&file(&[("k", &key), ("k", &key)]), "f"),
            Err(KeysFileError::Duplicate { .. })
        ));
        let missing = TrustedKeys::load(Path::new("/nonexistent/keys.json")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/keys.json"));
    }
}
