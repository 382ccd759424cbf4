//! The sign-in page: an admin key in, a session cookie out.

use http::{StatusCode, header};

use crate::http::{
    HttpResponse,
    console::{csrf, html, respond, session::random_token},
};

/// How long a sign-in form stays good.
const FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn page(secure: bool, message: Option<&str>, status: StatusCode) -> HttpResponse {
    let token = random_token();
    let mut main = String::new();
    if let Some(message) = message {
        main.push_str(&html::message("error", message));
    }
    main.push_str(&format!(
        "<p>Sign in with an admin key (a key with the <code>keyward:admin</code> scope, \
         e.g. from <code>keyward admin bootstrap</code>). The key stays on the server for \
         this session; the browser keeps only a random session id.</p>\
         <form method=\"post\" action=\"/ui/sign-in\" class=\"card narrow\">{}\
         <label for=\"admin_key\">Admin key</label>\
         <input id=\"admin_key\" name=\"admin_key\" type=\"password\" required \
         autocomplete=\"off\" spellcheck=\"false\" autofocus>\
         <button type=\"submit\">Sign in</button></form>",
        html::csrf_field(&token)
    ));
    let mut response = respond::page(status, html::document("Sign in", None, &main));
    response.headers_mut().append(
        header::SET_COOKIE,
        respond::cookie(csrf::SIGN_IN_COOKIE, &token, FORM_LIFETIME, secure),
    );
    response
}
