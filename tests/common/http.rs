//! The tests' one HTTP/1.1 client: one request per connection, as curl
//! sends it. `request` and `connect_json` for the HTTP side of the main
//! port (Connect, gRPC-Web, CORS); `http` for the gateways in front of it.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-cased names; a repeated header keeps its last value.
    pub headers: HashMap<String, String>,
    /// Every header in order, repeated ones too (`set-cookie`).
    pub all_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How long one exchange may take, so a hung server fails the test.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An answer as read off the wire: headers in order, names lower-cased,
/// a chunked body already joined.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The one HTTP/1.1 exchange every helper here makes: `method path` on a
/// fresh connection that closes after the answer, so the body is
/// everything after the head. `body` None sends no content-length.
async fn exchange(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Raw> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&request).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no response head: {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(Raw {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body (a streamed gRPC-Web answer is one); stops
/// at the last chunk or at anything that is not a chunk.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line]);
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let after = &rest[line + 2..];
        if size == 0 || after.len() < size {
            break;
        }
        body.extend_from_slice(&after[..size]);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    body
}

/// `method path` with `headers` and `body` (always with its
/// content-length), to keyward's main port.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let raw = exchange(addr, &addr.to_string(), method, path, headers, Some(body))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Reply {
        status: raw.status,
        headers: raw.headers.iter().cloned().collect(),
        all_headers: raw.headers,
        body: raw.body,
    }
}

/// An answer with its headers in order and its body as text, for the
/// gateways' tests (Envoy, nginx, Caddy and what they pass upstream).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// In order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The upstream's echo of the request headers it received.
    pub fn echoed_headers(&self) -> serde_json::Map<String, serde_json::Value> {
        let json: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not an echo: {self:?}"));
        json["headers"].as_object().unwrap().clone()
    }
}

/// One request to `127.0.0.1:port` for host `api.example`, no body.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    http_with_body(port, method, path, headers, &[]).await
}

/// As [`http`], sending `body` (with its content-length) when not empty.
pub async fn http_with_body(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let body = (!body.is_empty()).then_some(body);
    let raw = exchange(addr, "api.example", method, path, headers, body).await?;
    Ok(HttpResponse {
        status: raw.status,
        headers: raw.headers,
        body: String::from_utf8_lossy(&raw.body).into_owned(),
    })
}

/// A Connect unary call with a JSON body; `admin` empty sends no
/// `authorization`.
pub async fn connect_json(
    addr: SocketAddr,
    method: &str,
    admin: &str,
    body: serde_json::Value,
) -> Reply {
    let bearer = format!("Bearer {admin}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("connect-protocol-version", "1"),
    ];
    if !admin.is_empty() {
        headers.push(("authorization", bearer.as_str()));
    }
    let path = format!("/keyward.v1.KeyService/{method}");
    request(addr, "POST", &path, &headers, body.to_string().as_bytes()).await
}
