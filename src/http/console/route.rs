//! Path and method → page, with the checks every request passes in this
//! order: a POST's CSRF token first (before the key is even looked at),
//! then the session, then the admin key through the admin auth path (so a
//! revoked or expired admin key ends the session on its next request).

use http::{Method, StatusCode, header, request::Parts};

use super::{
    csrf,
    error::ConsoleError,
    form::Form,
    pages::{self, View},
    respond,
    rpc::Rpc,
    session::{self, AdminKey, Sessions},
};
use crate::http::{HttpRequest, HttpResponse, body};

/// Where the console is served: `/ui` and everything below it.
pub const MOUNT: &str = "/ui";

/// The most a console form may send: the largest is a key's settings.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub struct Context {
    pub rpc: Rpc,
    pub sessions: Sessions,
    /// Served over TLS: cookies are `Secure`.
    pub secure: bool,
}

pub async fn handle(context: &Context, request: HttpRequest) -> HttpResponse {
    let path = request.uri().path().strip_prefix(MOUNT).unwrap_or("");
    match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/assets/console.css") => {
            return respond::asset("text/css; charset=utf-8", pages::assets::CSS);
        }
        (&Method::GET | &Method::HEAD, "/assets/console.js") => {
            return respond::asset("text/javascript; charset=utf-8", pages::assets::JS);
        }
        (_, "") => return respond::redirect("/ui/"),
        _ => {}
    }
    let (parts, incoming) = request.into_parts();
    let form = match parts.method {
        Method::GET | Method::HEAD => Form::query(&parts.uri),
        Method::POST => match body::read(incoming, MAX_FORM_BYTES).await {
            Ok(bytes) => Form::parse(&bytes),
            Err(_) => return respond::failure(&ConsoleError::Body, None),
        },
        _ => return respond::failure(&ConsoleError::Method, None),
    };
    let post = parts.method == Method::POST;
    let cookie = respond::read_cookie(&parts.headers, session::COOKIE).map(str::to_owned);
    let session = cookie.as_deref().and_then(|id| context.sessions.get(id));
    let path = parts.uri.path().strip_prefix(MOUNT).unwrap_or("");
    match (post, path) {
        (false, "/") if session.is_none() => {
            let ended = form.get("ended").is_some();
            return pages::sign_in::page(context.secure, ended.then_some(ENDED), StatusCode::OK);
        }
        (false, "/") => return respond::redirect("/ui/projects"),
        (true, "/sign-in") => return sign_in(context, parts, &form).await,
        _ => {}
    }
    let Some(session) = session else {
        if post {
            return respond::failure(&ConsoleError::Csrf, None);
        }
        return respond::redirect("/ui/");
    };
    if post && !csrf::matches(&session.csrf, form.get(csrf::FIELD)) {
        return respond::failure(&ConsoleError::Csrf, None);
    }
    let id = cookie.unwrap_or_default();
    if post && path == "/sign-out" {
        context.sessions.end(&id);
        return signed_out(context, None);
    }
    let caller = match context
        .rpc
        .caller(session.key.clone(), parts.extensions)
        .await
    {
        Ok(caller) => caller,
        Err(ConsoleError::Rpc {
            code: tonic::Code::Unauthenticated,
            ..
        }) => {
            context.sessions.end(&id);
            return signed_out(context, Some("/ui/?ended=1"));
        }
        Err(error) => return respond::failure(&error, None),
    };
    let view = View {
        caller: &caller,
        csrf: &session.csrf,
        form: &form,
    };
    let answer = if post {
        pages::post(path, &view).await
    } else {
        pages::get(path, &view).await
    };
    answer.unwrap_or_else(|error| respond::failure(&error, Some(&session.csrf)))
}

const ENDED: &str = "Your session ended: the admin key is no longer valid. Sign in again.";

/// Checks the sign-in form's token against its cookie, then the key; a
/// good key starts a session.
async fn sign_in(context: &Context, parts: Parts, form: &Form) -> HttpResponse {
    let expected = respond::read_cookie(&parts.headers, csrf::SIGN_IN_COOKIE).unwrap_or("");
    if !csrf::matches(expected, form.get(csrf::FIELD)) {
        return respond::failure(&ConsoleError::Csrf, None);
    }
    let key = AdminKey::new(form.text("admin_key").to_owned());
    if let Err(error) = context.rpc.caller(key.clone(), parts.extensions).await {
        let status = crate::http::status::for_console(&error);
        return pages::sign_in::page(context.secure, Some(&error.to_string()), status);
    }
    // A browser signing in again gets a new id; its old session ends.
    if let Some(old) = respond::read_cookie(&parts.headers, session::COOKIE) {
        context.sessions.end(old);
    }
    let Some(id) = context.sessions.start(key) else {
        return respond::failure(&ConsoleError::TooManySessions, None);
    };
    let mut response = respond::redirect("/ui/projects");
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        respond::cookie(session::COOKIE, &id, context.sessions.ttl(), context.secure),
    );
    headers.append(
        header::SET_COOKIE,
        respond::cookie(
            csrf::SIGN_IN_COOKIE,
            "",
            std::time::Duration::ZERO,
            context.secure,
        ),
    );
    response
}

/// Back to the sign-in page with the session cookie cleared.
fn signed_out(context: &Context, location: Option<&str>) -> HttpResponse {
    let mut response = respond::redirect(location.unwrap_or("/ui/"));
    response.headers_mut().append(
        header::SET_COOKIE,
        respond::cookie(
            session::COOKIE,
            "",
            std::time::Duration::ZERO,
            context.secure,
        ),
    );
    response
}
