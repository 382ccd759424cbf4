//! What every page of a signed-in session is given.

use crate::http::console::{form::Form, rpc::Caller};

/// What a page of a signed-in session gets.
pub struct View<'a> {
    pub caller: &'a Caller,
    pub csrf: &'a str,
    /// The query string of a GET, the body of a POST.
    pub form: &'a Form,
}
