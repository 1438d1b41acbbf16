//! agnhost's `netexec` server, as the twin's pods run it: the HTTP and UDP endpoints of
//! `test/images/agnhost/netexec/netexec.go` (kubernetes/kubernetes), the server Kubernetes'
//! own network e2e tests probe through the API server's proxy.
//!
//! Recognised: a container whose image is agnhost (`registry.k8s.io/e2e-test-images/agnhost:
//! 2.x`, or the older `k8s.gcr.io`/`gcr.io/kubernetes-e2e-test-images` names) and whose
//! command or args run the `netexec` subcommand; `--http-port` (default 8080) and
//! `--udp-port` (default 8081, `-1` for none) are honoured.
//!
//! HTTP, as netexec answers: `/hostname` and `/hostName` (the pod's hostname), `/echo?msg=
//! [&code=]`, `/clientip` (`ip:port` of the caller), `/healthz` (200 once the UDP server runs,
//! 412 otherwise — so 412 forever with `--udp-port=-1`), `/readyz` (`ok`), `/serverport`,
//! `/header[?key=]`, `/redirect?location=[&code=]`, `/dial?request=&host=&port=[&protocol=
//! http|udp][&tries=]` and `/` for every other path (`NOW: <time>`). `/dial` makes `tries`
//! requests to `host:port` through the twin's pod network ([`super::net`]) with netexec's
//! 5 s client timeout and answers `{"errors":[…],"responses":[…]}` with status 200 — whatever
//! the outcome; `responses` only when the last try returned something (netexec's
//! `if len(response) > 0`); 400 with netexec's texts for bad parameters. Error texts are Go's:
//! `Get "http://IP:PORT/REQ": dial tcp IP:PORT: connect: connection refused`, `… dial tcp
//! IP:PORT: i/o timeout (Client.Timeout exceeded while awaiting headers)`, and for UDP
//! `reading from udp connection failed. err:'read udp SRC->DST: i/o timeout'`.
//! Bodies are written the way Go's `fmt.Fprint` and `json.Marshal` write them (sniffed
//! `text/plain; charset=utf-8`, sorted keys, HTML-safe escapes).
//!
//! Not emulated: `/shell`, `/upload`, `/exit` and `/shutdown` (answered 501 by the twin),
//! SCTP (`protocol=sctp` tries fail as if nothing listened), TLS (`--tls-cert-file`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::net::{Conn, From, Net, Proto, Server};

/// netexec's HTTP client timeout in `/dial` (`createHTTPClient`), and its UDP read deadline.
const DIAL_TIMEOUT_SECS: f64 = 5.0;
/// How long Go's resolver tries before giving up (timeout 5 s, 2 attempts).
const RESOLVE_TIMEOUT_SECS: f64 = 10.0;

const TEXT: &str = "text/plain; charset=utf-8";

/// The netexec flags the twin honours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Netexec {
    pub http_port: u16,
    pub udp_port: Option<u16>,
}

fn is_agnhost(image: &str) -> bool {
    let repo = image.split(['@']).next().unwrap_or_default();
    let repo = repo
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(repo, |(r, _)| r);
    [
        "registry.k8s.io/e2e-test-images/agnhost",
        "k8s.gcr.io/e2e-test-images/agnhost",
        "gcr.io/kubernetes-e2e-test-images/agnhost",
    ]
    .contains(&repo)
}

impl Netexec {
    pub fn recognise(container: &Value) -> Option<Netexec> {
        if !is_agnhost(container["image"].as_str().unwrap_or_default()) {
            return None;
        }
        let argv: Vec<&str> = ["command", "args"]
            .iter()
            .flat_map(|k| container[k].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        let at = argv.iter().position(|a| *a == "netexec")?;
        let flags = &argv[at + 1..];
        let flag = |name: &str| -> Option<i64> {
            flags.iter().enumerate().find_map(|(i, a)| {
                let a = a.trim_start_matches('-');
                match a.split_once('=') {
                    Some((k, v)) if k == name => v.parse().ok(),
                    None if a == name => flags.get(i + 1).and_then(|v| v.parse().ok()),
                    _ => None,
                }
            })
        };
        let port = |v: i64| u16::try_from(v).ok().filter(|p| *p > 0);
        Some(Netexec {
            http_port: flag("http-port").map_or(Some(8080), port)?,
            udp_port: flag("udp-port").map_or(Some(8081), port),
        })
    }
}

/// An HTTP request as the server sees it.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// `ip:port` of the caller.
    pub client: &'a str,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// `fmt.Fprint(w, …)`: 200 (or `status`), content type sniffed as text.
    fn text(status: u16, body: impl Into<String>) -> Reply {
        let body = body.into();
        let headers = if body.is_empty() {
            vec![]
        } else {
            vec![("Content-Type", TEXT.to_string())]
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `http.Error`.
    fn error(status: u16, msg: &str) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type", TEXT.to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
            ],
            body: format!("{msg}\n"),
        }
    }
}

/// `url.Values`: first value per key.
pub(crate) fn form(q: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url_pairs(q) {
        out.entry(k).or_insert(v);
    }
    out
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// `json.Marshal` of a `map[string][]string` or similar: sorted keys (serde_json's maps are
/// sorted), and Go's HTML-safe escapes.
fn go_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn hostname(pod: &Value) -> String {
    if pod["spec"]["hostNetwork"].as_bool() == Some(true) {
        return pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let name = pod["spec"]["hostname"]
        .as_str()
        .or_else(|| pod["metadata"]["name"].as_str())
        .unwrap_or_default();
    name.chars().take(63).collect()
}

/// Serve one HTTP request on the netexec of `pod`. Returns the reply and how long it took
/// (the timeouts `/dial` waited out). `depth` bounds `/dial` chains.
pub(crate) fn serve(
    net: &mut Net,
    pod: &Arc<Value>,
    n: &Netexec,
    req: &Request,
    depth: u32,
) -> (Reply, Duration) {
    let query = form(req.query);
    // r.FormValue: urlencoded POST/PUT/PATCH bodies take precedence over the query.
    let mut values = query.clone();
    if matches!(req.method, "POST" | "PUT" | "PATCH")
        && req
            .content_type
            .starts_with("application/x-www-form-urlencoded")
    {
        for (k, v) in form(&String::from_utf8_lossy(req.body)) {
            values.insert(k, v);
        }
    }
    let get = |k: &str| values.get(k).cloned().unwrap_or_default();
    let ready = n.udp_port.is_some();
    let reply = match req.path {
        "/hostname" | "/hostName" => Reply::text(200, hostname(pod)),
        "/clientip" => Reply::text(200, req.client),
        "/serverport" => Reply::text(200, n.http_port.to_string()),
        "/healthz" => Reply::text(if ready { 200 } else { 412 }, ""),
        "/readyz" if ready => Reply::text(200, "ok"),
        "/readyz" => Reply::text(412, ""),
        "/echo" => {
            let code = get("code");
            match code.parse::<u16>() {
                _ if code.is_empty() => Reply::text(200, get("msg")),
                Ok(c) => Reply::text(c, get("msg")),
                Err(_) => Reply::text(
                    200,
                    format!("argument 'code' must be an integer or empty, got {code:?}\n"),
                ),
            }
        }
        "/header" => {
            let key = get("key");
            let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in req.headers {
                h.entry(canonical_header(k)).or_default().push(v.clone());
            }
            if key.is_empty() {
                Reply::text(200, go_json(&json!(h)))
            } else {
                let v = h
                    .get(&canonical_header(&key))
                    .and_then(|v| v.first())
                    .cloned();
                Reply::text(200, v.unwrap_or_default())
            }
        }
        "/redirect" => {
            let code = get("code");
            let status = if code.is_empty() {
                Ok(302)
            } else {
                code.parse::<u16>()
            };
            match status {
                Ok(s) => {
                    let location = get("location");
                    let mut r = Reply::text(s, "");
                    r.headers.push(("Location", location.clone()));
                    if req.method == "GET" || req.method == "HEAD" {
                        r.headers
                            .push(("Content-Type", "text/html; charset=utf-8".into()));
                        r.body = format!(
                            "<a href=\"{}\">{}</a>.\n\n",
                            html_escape(&location),
                            reason(s)
                        );
                    }
                    r
                }
                Err(_) => Reply::text(
                    200,
                    format!("argument 'code' must be an integer or empty, got {code:?}\n"),
                ),
            }
        }
        "/dial" => return dial(net, pod, &query, depth),
        "/shell" | "/upload" | "/exit" | "/shutdown" => Reply::error(
            501,
            &format!("the twin's agnhost netexec does not emulate {}", req.path),
        ),
        _ => Reply::text(200, format!("NOW: {}", go_now())),
    };
    (reply, Duration::ZERO)
}

/// A UDP datagram to netexec's UDP server: the answer, if any.
pub(crate) fn serve_udp(pod: &Value, n: &Netexec, payload: &str, client: &str) -> Option<String> {
    let text = payload.trim().to_lowercase();
    match text.as_str() {
        "hostname" => Some(hostname(pod)),
        "clientip" => Some(client.to_string()),
        "serverport" => n.udp_port.map(|p| p.to_string()),
        t => t.strip_prefix("echo ").map(str::to_string),
    }
}

fn canonical_header(k: &str) -> String {
    k.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join("-")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn reason(code: u16) -> &'static str {
    match code {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "",
    }
}

/// `time.Now()` as `%v` prints it.
fn go_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.9f +0000 UTC")
        .to_string()
}

/// `/dial`.
fn dial(
    net: &mut Net,
    pod: &Arc<Value>,
    q: &BTreeMap<String, String>,
    depth: u32,
) -> (Reply, Duration) {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (host, port, request, protocol, tries) = (
        get("host"),
        get("port"),
        get("request"),
        get("protocol"),
        get("tries"),
    );
    let tries = if tries.is_empty() {
        1
    } else {
        match tries.parse::<i64>() {
            Ok(t) => t,
            Err(_) => {
                return (
                    Reply::error(
                        400,
                        &format!(
                            "tries parameter is invalid. strconv.Atoi: parsing {tries:?}: invalid syntax"
                        ),
                    ),
                    Duration::ZERO,
                );
            }
        }
    };
    if request.is_empty() {
        return (
            Reply::error(400, "request parameter not specified. <nil>"),
            Duration::ZERO,
        );
    }
    let proto = match protocol.to_lowercase().as_str() {
        "" | "http" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "sctp" => None,
        _ => {
            return (
                Reply::error(400, &format!("unsupported protocol. {protocol}")),
                Duration::ZERO,
            );
        }
    };
    let from = From::Pod(Arc::clone(pod));
    let scale = net.scale;
    let secs = |s: f64| Duration::from_secs_f64(s * scale);
    let mut waited = Duration::ZERO;
    let ip = if host.is_empty() {
        pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        match net.resolve(&from, &host) {
            Ok(ip) => ip,
            Err((e, timed_out)) => {
                let wait = if timed_out {
                    secs(RESOLVE_TIMEOUT_SECS)
                } else {
                    Duration::ZERO
                };
                return (
                    Reply::error(400, &format!("host and/or port param are invalid. {e}")),
                    wait,
                );
            }
        }
    };
    let port_num = match port.parse::<u16>() {
        Ok(p) => p,
        Err(_) if port.is_empty() => 0,
        Err(_) => {
            let net_name = if proto == Some(Proto::Udp) {
                "udp"
            } else {
                "tcp"
            };
            return (
                Reply::error(
                    400,
                    &format!(
                        "host and/or port param are invalid. lookup {net_name}/{port}: unknown port"
                    ),
                ),
                Duration::ZERO,
            );
        }
    };
    let addr = format!("{ip}:{port_num}");
    let mut errors: Vec<String> = Vec::new();
    let mut responses: Vec<String> = Vec::new();
    let mut last = String::new();
    for _ in 0..tries.max(0) {
        let outcome: Result<String, String> = match proto {
            None => Err("sctp dial failed. err:connection refused".to_string()),
            Some(Proto::Tcp) => {
                let url = format!("http://{addr}/{request}");
                match net.connect(&from, &ip, port_num, Proto::Tcp) {
                    Conn::Open(peer) => match &peer.server {
                        Server::Netexec(target) if depth < 4 => {
                            let (path, query) = request.split_once('?').unwrap_or((&request, ""));
                            let path = format!("/{}", path.trim_start_matches('/'));
                            let target_pod = Arc::clone(&peer.pod);
                            let (r, d) = serve(
                                net,
                                &target_pod,
                                target,
                                &Request {
                                    method: "GET",
                                    path: &path,
                                    query,
                                    content_type: "",
                                    headers: &[],
                                    body: &[],
                                    client: &peer.client,
                                },
                                depth + 1,
                            );
                            waited += d;
                            Ok(r.body)
                        }
                        _ => Err(format!("Get {url:?}: EOF")),
                    },
                    Conn::Refused => Err(format!(
                        "Get {url:?}: dial tcp {addr}: connect: connection refused"
                    )),
                    Conn::Timeout => {
                        waited += secs(DIAL_TIMEOUT_SECS);
                        Err(format!(
                            "Get {url:?}: dial tcp {addr}: i/o timeout (Client.Timeout exceeded while awaiting headers)"
                        ))
                    }
                }
            }
            Some(Proto::Udp) => {
                let client = net.client_addr(&from);
                let read_err = |what: &str| {
                    format!(
                        "reading from udp connection failed. err:'read udp {client}->{addr}: {what}'"
                    )
                };
                match net.connect(&from, &ip, port_num, Proto::Udp) {
                    Conn::Open(peer) => match &peer.server {
                        Server::Netexec(target) => {
                            match serve_udp(&peer.pod, target, &request, &client) {
                                Some(answer) if !answer.is_empty() => Ok(answer),
                                _ => {
                                    waited += secs(DIAL_TIMEOUT_SECS);
                                    Err(read_err("i/o timeout"))
                                }
                            }
                        }
                        Server::Opaque => {
                            waited += secs(DIAL_TIMEOUT_SECS);
                            Err(read_err("i/o timeout"))
                        }
                    },
                    Conn::Refused => Err(read_err("read: connection refused")),
                    Conn::Timeout => {
                        waited += secs(DIAL_TIMEOUT_SECS);
                        Err(read_err("i/o timeout"))
                    }
                }
            }
        };
        match outcome {
            Ok(r) => {
                last = r.clone();
                responses.push(r);
            }
            Err(e) => {
                last.clear();
                errors.push(e);
            }
        }
    }
    let mut out = serde_json::Map::new();
    if !last.is_empty() {
        out.insert("responses".into(), json!(responses));
    }
    if !errors.is_empty() {
        out.insert("errors".into(), json!(errors));
    }
    (Reply::text(200, go_json(&Value::Object(out))), waited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agnhost_netexec_is_recognised_with_its_ports() {
        let c = json!({"image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": ["netexec", "--http-port=8083", "--udp-port", "-1"]});
        assert_eq!(
            Netexec::recognise(&c),
            Some(Netexec {
                http_port: 8083,
                udp_port: None
            })
        );
        let c = json!({"image": "registry.k8s.io/e2e-test-images/agnhost:2.39", "command": ["/agnhost", "netexec"]});
        assert_eq!(
            Netexec::recognise(&c),
            Some(Netexec {
                http_port: 8080,
                udp_port: Some(8081)
            })
        );
        assert_eq!(
            Netexec::recognise(&json!({"image": "nginx:1.27", "args": ["netexec"]})),
            None
        );
        assert_eq!(
            Netexec::recognise(
                &json!({"image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": ["pause"]})
            ),
            None
        );
    }

    #[test]
    fn go_json_sorts_and_escapes_like_encoding_json() {
        let v = json!({"responses": ["a"], "errors": ["Get \"http://x/<y>&z\": EOF"]});
        assert_eq!(
            go_json(&v),
            r#"{"errors":["Get \"http://x/\u003cy\u003e\u0026z\": EOF"],"responses":["a"]}"#
        );
        assert_eq!(
            form("msg=a+b%21&msg=2&code="),
            BTreeMap::from([
                ("msg".into(), "a b!".into()),
                ("code".into(), String::new())
            ])
        );
        assert_eq!(canonical_header("x-forwarded-for"), "X-Forwarded-For");
    }
}
