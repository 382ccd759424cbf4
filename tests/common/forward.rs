//! Forward-auth sub-requests as each kind of gateway sends them, shared by
//! tests/forward_auth.rs and tests/forward_auth_telemetry.rs.

pub const RULES: &str = r#"
[ext_authz]
[[ext_authz.routes]]
methods = ["GET", "HEAD"]
path = "/orders/**"
scopes = ["orders:read"]

[[ext_authz.routes]]
path = "/orders/**"
scopes = ["orders:write"]
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Envoy,
    Nginx,
    Forwarded,
}

pub const MODES: [Mode; 3] = [Mode::Envoy, Mode::Nginx, Mode::Forwarded];

/// The sub-request each gateway sends about `method target`: its method,
/// its path and the headers naming the original request.
pub fn sub(
    mode: Mode,
    method: &str,
    target: &str,
) -> (String, String, Vec<(&'static str, String)>) {
    match mode {
        Mode::Envoy => (method.into(), format!("/authz/envoy{target}"), vec![]),
        Mode::Nginx => (
            "GET".into(),
            "/authz/nginx".into(),
            vec![
                ("x-original-method", method.into()),
                ("x-original-uri", target.into()),
            ],
        ),
        Mode::Forwarded => (
            "GET".into(),
            "/authz/forwarded".into(),
            vec![
                ("x-forwarded-method", method.into()),
                ("x-forwarded-uri", target.into()),
            ],
        ),
    }
}
