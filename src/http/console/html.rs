//! HTML text: escaping, and the frame every signed-in page shares.

use std::fmt::Write;

/// `text` safe inside an element or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole document. `csrf` is the session's token when signed in (the
/// header then has the navigation and the sign-out button).
pub fn document(title: &str, csrf: Option<&str>, main: &str) -> String {
    let mut page = String::with_capacity(main.len() + 2048);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · keyward</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/console.css\">\
         <script src=\"/ui/assets/console.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><a class=\"brand\" href=\"/ui/\">keyward</a>",
        esc(title)
    );
    if let Some(csrf) = csrf {
        let _ = write!(
            page,
            "<nav aria-label=\"Main\"><a href=\"/ui/projects\">Projects</a>\
             <a href=\"/ui/audit\">Audit log</a></nav>\
             <form method=\"post\" action=\"/ui/sign-out\" class=\"sign-out\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out</button></form>",
            esc(csrf)
        );
    }
    let _ = writeln!(
        page,
        "</header><main id=\"main\"><h1>{}</h1>{main}</main></body></html>",
        esc(title)
    );
    page
}

/// A hidden CSRF field for a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A message box: `kind` is `error` or `notice`.
pub fn message(kind: &str, text: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!(
        "<p class=\"message {kind}\" role=\"{role}\">{}</p>",
        esc(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_frame_has_no_inline_script() {
        let page = document("Keys <b>", Some("tok"), "<p>x</p>");
        assert!(page.contains("Keys &lt;b&gt;"));
        assert!(page.contains("value=\"tok\""));
        assert!(!page.contains("<script>"));
        assert!(!page.contains("style="));
    }
}
