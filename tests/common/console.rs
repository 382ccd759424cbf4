//! A browser for the console's HTTP tests: a cookie jar and forms, over the
//! tests' one HTTP/1.1 client.

use std::{collections::BTreeMap, net::SocketAddr};

use super::http::{Reply, request};

pub struct Browser {
    pub addr: SocketAddr,
    /// Cookie name → value, as the server last set them.
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, reply: &Reply) {
        for (name, value) in &reply.all_headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((n, v)) = pair.split_once('=') {
                if v.is_empty() || value.contains("Max-Age=0") {
                    self.cookies.remove(n);
                } else {
                    self.cookies.insert(n.to_owned(), v.to_owned());
                }
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let cookie = self.cookie_header();
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("cookie", cookie.as_str())]
        };
        let reply = request(self.addr, "GET", path, &headers, b"").await;
        self.keep_cookies(&reply);
        reply
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let cookie = self.cookie_header();
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        let reply = request(self.addr, "POST", path, &headers, body.as_bytes()).await;
        self.keep_cookies(&reply);
        reply
    }

    /// Signs in with `admin` through the sign-in form; the reply to the POST.
    pub async fn sign_in(&mut self, admin: &str) -> Reply {
        let form = self.get("/ui/").await;
        assert_eq!(form.status, 200, "{}", text(&form));
        let csrf = csrf_of(&form);
        self.post("/ui/sign-in", &[("csrf", &csrf), ("admin_key", admin)])
            .await
    }
}

pub fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The CSRF token in a page's forms.
pub fn csrf_of(reply: &Reply) -> String {
    let page = text(reply);
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))
        + "name=\"csrf\" value=\"".len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// The secret a "Key issued" or "Key rotated" page shows.
pub fn secret_of(reply: &Reply) -> String {
    let page = text(reply);
    let marker = "class=\"secret-value\" readonly value=\"";
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("no secret in {page}"))
        + marker.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}
