//! Path patterns of route rules, matched against canonical paths: a
//! segment-wise prefix, or a glob where `*` stays within a segment and `**`
//! spans whole segments.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathPattern {
    Prefix(String),
    Glob(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// `**`: zero or more whole segments.
    AnyDepth,
    /// Literal characters, `*` matching any run within the segment.
    Pattern(String),
}

impl PathPattern {
    /// `/orders` matches `/orders` and what lies under `/orders/`; a prefix
    /// ending in `/` is a plain string prefix.
    pub(super) fn prefix(prefix: String) -> Self {
        PathPattern::Prefix(prefix)
    }

    pub(super) fn glob(glob: &str) -> Result<Self, String> {
        compile_glob(glob).map(PathPattern::Glob)
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Prefix(prefix) => {
                if prefix.ends_with('/') {
                    path.starts_with(prefix.as_str())
                } else {
                    path.strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                }
            }
            PathPattern::Glob(segments) => glob_match(segments, Some(path)),
        }
    }
}

fn compile_glob(glob: &str) -> Result<Vec<Segment>, String> {
    let mut segments: Vec<Segment> = Vec::new();
    for part in glob.split('/') {
        if part == "**" {
            // `**/**` is the same as `**`.
            if segments.last() != Some(&Segment::AnyDepth) {
                segments.push(Segment::AnyDepth);
            }
        } else if part.contains("**") {
            return Err(format!(
                "path: {glob:?}: `**` must be a whole segment (`/a/**/b`); use `*` within a segment"
            ));
        } else {
            segments.push(Segment::Pattern(part.to_owned()));
        }
    }
    Ok(segments)
}

/// `rest` is the part of the path not yet matched (`None` once every
/// segment is used).
fn glob_match(pattern: &[Segment], rest: Option<&str>) -> bool {
    let split = |s: &str| -> (usize, Option<usize>) {
        match s.find('/') {
            Some(i) => (i, Some(i + 1)),
            None => (s.len(), None),
        }
    };
    match pattern.split_first() {
        None => rest.is_none(),
        Some((Segment::AnyDepth, tail)) => {
            if glob_match(tail, rest) {
                return true;
            }
            match rest {
                None => false,
                Some(s) => {
                    let (_, next) = split(s);
                    glob_match(pattern, next.map(|n| &s[n..]))
                }
            }
        }
        Some((Segment::Pattern(p), tail)) => match rest {
            None => false,
            Some(s) => {
                let (end, next) = split(s);
                wildcard(p.as_bytes(), &s.as_bytes()[..end])
                    && glob_match(tail, next.map(|n| &s[n..]))
            }
        },
    }
}

/// `*` matches any run of bytes (the segment has no `/`).
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}
