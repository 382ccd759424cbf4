//! The console's answers: every one with the same security headers, so no
//! page can be framed, run inline script, leak its URL to another site or
//! be kept in a cache.

use http::{HeaderValue, StatusCode, header};

use super::{error::ConsoleError, html};
use crate::http::{HttpResponse, reply, status};

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; \
                       base-uri 'none'";

fn secure(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A page.
pub fn page(status: StatusCode, body: String) -> HttpResponse {
    let mut response = reply::full(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(response)
}

/// `303 See Other` to `location` (a path of the console).
pub fn redirect(location: &str) -> HttpResponse {
    let mut response = reply::empty(StatusCode::SEE_OTHER);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response)
}

/// An embedded asset; these may be cached, they change only with the binary.
pub fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = reply::full(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    secure(response)
}

/// The page for a failure: the reason in words, never a trace.
pub fn failure(error: &ConsoleError, csrf: Option<&str>) -> HttpResponse {
    let code = status::for_console(error);
    let body = html::document(
        "Something went wrong",
        csrf,
        &format!(
            "{}<p><a href=\"/ui/\">Back to the console</a></p>",
            html::message("error", &error.to_string())
        ),
    );
    page(code, body)
}

/// `Set-Cookie` for a cookie of the console (path `/ui`).
pub fn cookie(name: &str, value: &str, max_age: std::time::Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text).expect("cookie names and values are plain ASCII")
}

/// The value of cookie `name` in the request headers.
pub fn read_cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_the_security_headers() {
        let response = page(StatusCode::OK, "<p>x</p>".to_owned());
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn cookies_are_strict_and_read_back() {
        let value = cookie("a", "b", std::time::Duration::from_secs(60), true);
        assert_eq!(
            value,
            "a=b; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("x=1; a=two"));
        assert_eq!(read_cookie(&headers, "a"), Some("two"));
        assert_eq!(read_cookie(&headers, "b"), None);
    }
}
