//! `application/x-www-form-urlencoded` fields, from a query string or a
//! POST body, and URL building for links.

use super::error::ConsoleError;

/// The fields of a form, in order; a name may repeat.
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    pub fn query(uri: &http::Uri) -> Self {
        Self::parse(uri.query().unwrap_or_default().as_bytes())
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value named `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default().trim()
    }

    /// A value that must be present and not empty.
    pub fn required(&self, name: &'static str) -> Result<&str, ConsoleError> {
        match self.text(name) {
            "" => Err(ConsoleError::form(name, "is required")),
            value => Ok(value),
        }
    }

    /// An optional number: empty means `None`.
    pub fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, ConsoleError> {
        match self.text(name) {
            "" => Ok(None),
            value => value
                .parse()
                .map(Some)
                .map_err(|_| ConsoleError::form(name, format!("{value:?} is not a whole number"))),
        }
    }
}

/// `path?name=value&…` with the values encoded, skipping empty ones.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in params {
        if !value.is_empty() {
            query.append_pair(name, value);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded() {
        let form = Form::parse(b"a=1&b=x+y%26z&a=2&n=+42+&bad=4x");
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.text("b"), "x y&z");
        assert_eq!(form.number::<u32>("n").unwrap(), Some(42));
        assert_eq!(form.number::<u32>("missing").unwrap(), None);
        assert!(form.number::<u32>("bad").is_err());
        assert!(form.required("missing").is_err());
    }

    #[test]
    fn links_encode_and_skip_empty_values() {
        assert_eq!(
            link("/ui/keys", &[("project", "a b&c"), ("label", "")]),
            "/ui/keys?project=a+b%26c"
        );
        assert_eq!(link("/ui/keys", &[("label", "")]), "/ui/keys");
    }
}
