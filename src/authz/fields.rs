//! The one way authz reads a request's named strings, below the key
//! sources and the check that both read them.

use std::collections::HashMap;

/// Read access to named string fields: request headers (lower-case names)
/// or context extensions.
pub trait Fields {
    fn field(&self, name: &str) -> Option<&str>;
}

impl Fields for HashMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}
