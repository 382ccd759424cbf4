//! What a key is: its string format, its digest and its public id.

mod base62;
pub mod digest;
pub mod format;
pub mod id;

pub use digest::Digest;
pub use format::{Malformed, ParsedKey, SecretKey};
pub use id::{InvalidKeyId, KeyId};
