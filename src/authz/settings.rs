//! The `[ext_authz]` table of keyward's config file: defaults, and the
//! checks that turn a mistake into a startup error naming the bad entry.

use serde::Deserialize;

use super::{
    credential::KeySources,
    routes::{DefaultRoute, RouteRules, Rule, RuleSpec},
};

/// `[ext_authz]` as written in the file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsFile {
    /// Headers whose whole value is the key.
    pub key_headers: Vec<String>,
    /// Header holding `<scheme> <key>`; `""` turns it off.
    pub authorization_header: String,
    /// Schemes accepted in that header.
    pub authorization_schemes: Vec<String>,
    /// Query parameter holding the key; unset (the default) turns it off.
    pub query_param: Option<String>,
    /// Remove the credential before the request goes upstream.
    pub strip_credential: bool,
    /// Allow everything, logging the decision keyward would have made.
    pub observe: bool,
    /// Where the client's address comes from, for keys restricted to some
    /// sources: 0 (the default) takes the address Envoy reports as the
    /// downstream peer; N takes the Nth address from the right of
    /// `x-forwarded-for`, i.e. the one the outermost of N trusted proxies
    /// saw (falling back to the peer when the header is shorter).
    pub xff_trusted_hops: u32,
    /// What a request no rule matches needs: `any_valid_key` or `deny`.
    pub default_route: DefaultRoute,
    /// Compare the letters of paths exactly (`/Admin` is not `/admin`).
    /// Off by default, so a case-insensitive upstream cannot be reached
    /// around a rule by changing case; the cost on a case-sensitive one is
    /// only that `/ADMIN` needs what `/admin` needs.
    pub case_sensitive: bool,
    /// `[[ext_authz.routes]]`, first match wins.
    pub routes: Vec<RuleSpec>,
}

impl Default for SettingsFile {
    fn default() -> Self {
        let sources = KeySources::default();
        Self {
            key_headers: sources.key_headers,
            authorization_header: sources.authorization_header.unwrap_or_default(),
            authorization_schemes: sources.authorization_schemes,
            query_param: None,
            strip_credential: true,
            observe: false,
            xff_trusted_hops: 0,
            default_route: DefaultRoute::AnyValidKey,
            case_sensitive: false,
            routes: Vec::new(),
        }
    }
}

/// Checked ext_authz settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub sources: KeySources,
    pub strip_credential: bool,
    pub observe: bool,
    pub xff_trusted_hops: u32,
    pub routes: RouteRules,
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_file(SettingsFile::default()).expect("the defaults are valid")
    }
}

impl Settings {
    /// Checks every entry; the error names the first bad one as
    /// `ext_authz.<key>`.
    pub fn from_file(file: SettingsFile) -> Result<Self, String> {
        let key_headers = file
            .key_headers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                header_name(name).map_err(|e| format!("ext_authz.key_headers[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let authorization_header = if file.authorization_header.is_empty() {
            None
        } else {
            Some(
                header_name(&file.authorization_header)
                    .map_err(|e| format!("ext_authz.authorization_header: {e}"))?,
            )
        };
        if authorization_header.is_some() {
            if file.authorization_schemes.is_empty() {
                return Err("ext_authz.authorization_schemes: must not be empty while authorization_header is set (set authorization_header = \"\" to turn it off)".into());
            }
            for (i, scheme) in file.authorization_schemes.iter().enumerate() {
                if !is_token(scheme) {
                    return Err(format!(
                        "ext_authz.authorization_schemes[{i}]: {scheme:?} is not a scheme name"
                    ));
                }
            }
        }
        if let Some(param) = &file.query_param
            && (param.is_empty() || param.contains(['&', '=', '?', '#', ' ']))
        {
            return Err(format!(
                "ext_authz.query_param: {param:?} is not a query parameter name"
            ));
        }
        if key_headers.is_empty() && authorization_header.is_none() && file.query_param.is_none() {
            return Err(
                "ext_authz: no key source: set key_headers, authorization_header or query_param"
                    .into(),
            );
        }
        let rules = file
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = spec
                    .path
                    .as_deref()
                    .map(|p| format!("path {p:?}"))
                    .or_else(|| {
                        spec.path_prefix
                            .as_deref()
                            .map(|p| format!("path_prefix {p:?}"))
                    })
                    .unwrap_or_else(|| "no path".to_owned());
                Rule::compile(spec, file.case_sensitive)
                    .map_err(|e| format!("ext_authz.routes[{i}] (rule {}, {name}): {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sources: KeySources {
                key_headers,
                authorization_header,
                authorization_schemes: file.authorization_schemes,
                query_param: file.query_param,
            },
            strip_credential: file.strip_credential,
            observe: file.observe,
            xff_trusted_hops: file.xff_trusted_hops,
            routes: RouteRules::new(rules, file.default_route, file.case_sensitive),
        })
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Lower-cases a header name (Envoy hands headers over lower-cased) and
/// refuses pseudo-headers and `host`, which cannot carry a key.
fn header_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if !is_token(&lower) {
        return Err(format!("{name:?} is not a header name"));
    }
    if lower == "host" {
        return Err("\"host\" cannot carry a key".into());
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::routes::Route;

    fn parse(text: &str) -> Result<Settings, String> {
        let file: SettingsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_file(file)
    }

    #[test]
    fn defaults_take_x_api_key_and_bearer_or_apikey() {
        let s = parse("").unwrap();
        assert_eq!(s.sources, KeySources::default());
        assert!(s.strip_credential);
        assert!(!s.observe);
        assert!(!s.routes.apply(), "no rules: the path is not looked at");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn every_key_can_be_set() {
        let s = parse(
            r#"
            key_headers = ["X-Token", "x-api-key"]
            authorization_header = "Proxy-Authorization"
            authorization_schemes = ["Key"]
            query_param = "api_key"
            strip_credential = false
            observe = true
            default_route = "deny"
            case_sensitive = true

            [[routes]]
            methods = ["GET"]
            path = "/orders/**"
            scopes = ["orders:read"]

            [[routes]]
            path_prefix = "/"
            scopes = []
            "#,
        )
        .unwrap();
        assert_eq!(s.sources.key_headers, ["x-token", "x-api-key"]);
        assert_eq!(
            s.sources.authorization_header.as_deref(),
            Some("proxy-authorization")
        );
        assert_eq!(s.sources.query_param.as_deref(), Some("api_key"));
        assert!(!s.strip_credential && s.observe);
        assert_eq!(
            s.routes.route("GET", "/orders/1"),
            Ok(Route::Scopes(&["orders:read".to_owned()]))
        );
        assert_eq!(s.routes.route("POST", "/orders/1"), Ok(Route::Scopes(&[])));
        let strict = parse("default_route = \"deny\"\ncase_sensitive = true\n[[routes]]\npath = \"/A\"\nscopes = []").unwrap();
        assert_eq!(strict.routes.route("GET", "/a"), Ok(Route::Deny));
        assert_eq!(strict.routes.route("GET", "/A"), Ok(Route::Scopes(&[])));
        let err = parse("default_route = \"allow\"").unwrap_err();
        assert!(
            err.contains("any_valid_key") && err.contains("deny"),
            "{err}"
        );
    }

    #[test]
    fn the_authorization_header_can_be_turned_off() {
        let s = parse(r#"authorization_header = """#).unwrap();
        assert_eq!(s.sources.authorization_header, None);
        let err = parse("key_headers = []\nauthorization_header = \"\"").unwrap_err();
        assert!(err.contains("no key source"), "{err}");
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let err = parse("key_headers = [\"x-api-key\", \"bad header\"]").unwrap_err();
        assert!(err.starts_with("ext_authz.key_headers[1]:"), "{err}");
        let err = parse("key_headers = [\"host\"]").unwrap_err();
        assert!(err.contains("host"), "{err}");
        let err = parse("query_param = \"a&b\"").unwrap_err();
        assert!(err.starts_with("ext_authz.query_param:"), "{err}");
        let err = parse("authorization_schemes = []").unwrap_err();
        assert!(err.starts_with("ext_authz.authorization_schemes:"), "{err}");
        let err = parse(
            r#"
            [[routes]]
            path = "/a"
            scopes = []
            [[routes]]
            path = "/b/**x"
            scopes = []
            "#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("ext_authz.routes[1] (rule 2, path \"/b/**x\"):"),
            "{err}"
        );
        let err = parse("[[routes]]\npath = \"/a\"\nscope = []").unwrap_err();
        assert!(err.contains("unknown field `scope`"), "{err}");
        let err = parse("obsrve = true").unwrap_err();
        assert!(err.contains("unknown field `obsrve`"), "{err}");
    }
}
