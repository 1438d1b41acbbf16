//! The API server's proxy subresources, to what the pods serve:
//! `/api/v1/namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy/{path}` and
//! `/api/v1/namespaces/{ns}/services/{[scheme:]name[:port]}/proxy/{path}`, any method.
//!
//! As kube-apiserver resolves them (`pkg/registry/core/pod/strategy.go` and
//! `pkg/registry/core/service/storage/storage.go` `ResourceLocation`): `name[:port]` or
//! `scheme:name:port` (`utilnet.SplitSchemeNamePort`), else 400 `invalid pod request`; a pod
//! without a port dials its first declared container port; a pod without an IP is 400
//! `address not allowed`. A Service's port number is mapped to its port name (503 `no service
//! port N found for service "x"`), and one of its ready endpoints serving that port name is
//! picked (503 `no endpoints available for service "x"`). The API server then dials the pod
//! from its control plane through the pod network ([`super::net`]); a failed dial is 503
//! `error trying to reach service: dial tcp IP:PORT: connect: connection refused` at once, or
//! `… i/o timeout` after the proxy dialer's 30 s (`k8s.io/apimachinery/pkg/util/proxy`
//! `transport.go` wraps every round-trip error in a ServiceUnavailable "error trying to reach
//! service: …"). A reached server's status, headers and body pass through unchanged.
//!
//! What the pods serve is [`super::netexec`] (agnhost netexec); a declared port of any other
//! image accepts the connection and closes it (`error trying to reach service: EOF`). The
//! caller's `Authorization` header is not passed on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::controllers::gvr_pods;
use super::net::{Conn, From, Net, Proto, Server, endpoints};
use super::netexec::{self, Request};
use super::status::ApiError;
use super::types::Gvr;
use super::{Shared, lock};

/// The API server's dial timeout when proxying (Go's default transport dialer: 30 s).
const PROXY_DIAL_TIMEOUT_SECS: f64 = 30.0;

/// Which proxy subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    Service,
}

/// A request to a proxy subresource.
pub(crate) struct ProxyRequest<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    /// `[scheme:]name[:port]`.
    pub id: &'a str,
    /// The path after `/proxy`, starting with `/`.
    pub path: String,
    pub query: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

enum Outcome {
    Reply(netexec::Reply),
    Error(ApiError),
}

/// `utilnet.SplitSchemeNamePort`.
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] if matches!(*s, "http" | "https") => (*s, *n, *p),
        _ => return None,
    };
    (!name.is_empty()).then_some((scheme, name, port))
}

/// Handle a proxy request: resolve under the world's lock, wait out what the dial waited,
/// answer.
pub(crate) async fn handle(sh: &Arc<Shared>, req: ProxyRequest<'_>) -> Response {
    let (outcome, waited) = {
        let mut w = lock(&sh.world);
        let super::World { store, sim } = &mut *w;
        let mut net = Net {
            store,
            sim,
            scale: sh.time_scale,
        };
        resolve_and_serve(&mut net, &req)
    };
    if !waited.is_zero() {
        tokio::time::sleep(waited).await;
    }
    match outcome {
        Outcome::Reply(r) => reply_response(r),
        Outcome::Error(e) => {
            let mut resp = Response::new(Body::from(e.to_status().to_string()));
            *resp.status_mut() =
                StatusCode::from_u16(e.code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
    }
}

fn reply_response(r: netexec::Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

fn unavailable(why: impl std::fmt::Display) -> Outcome {
    Outcome::Error(ApiError::service_unavailable(format!(
        "error trying to reach service: {why}"
    )))
}

fn resolve_and_serve(net: &mut Net, req: &ProxyRequest) -> (Outcome, Duration) {
    let invalid = |what: &str| {
        (
            Outcome::Error(ApiError::bad_request(format!(
                "invalid {what} request {:?}",
                req.id
            ))),
            Duration::ZERO,
        )
    };
    let (target, scheme, port) = match req.kind {
        Kind::Pod => {
            let Some((scheme, name, port)) = split_scheme_name_port(req.id) else {
                return invalid("pod");
            };
            let Some(pod) = net.store.get(&gvr_pods(), req.namespace, name) else {
                return (
                    Outcome::Error(ApiError::not_found(&gvr_pods(), name)),
                    Duration::ZERO,
                );
            };
            let port = if port.is_empty() {
                first_container_port(&pod).unwrap_or_default()
            } else {
                port.to_string()
            };
            let Some(ip) = pod["status"]["podIPs"][0]["ip"]
                .as_str()
                .map(str::to_string)
            else {
                return (
                    Outcome::Error(ApiError::bad_request("address not allowed")),
                    Duration::ZERO,
                );
            };
            (ip, scheme, port)
        }
        Kind::Service => {
            let Some((scheme, name, port)) = split_scheme_name_port(req.id) else {
                return invalid("service");
            };
            let svcs = Gvr::new("", "v1", "services");
            let Some(svc) = net.store.get(&svcs, req.namespace, name) else {
                return (
                    Outcome::Error(ApiError::not_found(&svcs, name)),
                    Duration::ZERO,
                );
            };
            let port_name = match port.parse::<i64>() {
                Ok(n) => match svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["port"].as_i64() == Some(n))
                {
                    Some(p) => p["name"].as_str().unwrap_or_default().to_string(),
                    None => {
                        return (
                            Outcome::Error(ApiError::service_unavailable(format!(
                                "no service port {n} found for service {name:?}"
                            ))),
                            Duration::ZERO,
                        );
                    }
                },
                Err(_) => port.to_string(),
            };
            let backends = endpoints(net.store, &svc, &port_name);
            if backends.is_empty() {
                return (
                    Outcome::Error(ApiError::service_unavailable(format!(
                        "no endpoints available for service {name:?}"
                    ))),
                    Duration::ZERO,
                );
            }
            net.sim.lb_turn = net.sim.lb_turn.wrapping_add(1);
            let (_, ip, port) = &backends[(net.sim.lb_turn % backends.len() as u64) as usize];
            (ip.clone(), scheme, port.to_string())
        }
    };
    let port_num = match port.as_str() {
        "" | "http" => 80,
        "https" => 443,
        p => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) => {
                return (
                    unavailable(format!("dial tcp: lookup tcp/{p}: unknown port")),
                    Duration::ZERO,
                );
            }
        },
    };
    let addr = format!("{target}:{port_num}");
    match net.connect(&From::ApiServer, &target, port_num, Proto::Tcp) {
        Conn::Refused => (
            unavailable(format!("dial tcp {addr}: connect: connection refused")),
            Duration::ZERO,
        ),
        Conn::Timeout => (
            unavailable(format!("dial tcp {addr}: i/o timeout")),
            Duration::from_secs_f64(PROXY_DIAL_TIMEOUT_SECS * net.scale),
        ),
        Conn::Open(peer) => match &peer.server {
            Server::Netexec(_) if scheme == "https" => (
                unavailable("tls: first record does not look like a TLS handshake"),
                Duration::ZERO,
            ),
            Server::Netexec(n) => {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .filter(|(k, _)| *k != header::AUTHORIZATION)
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect();
                let content_type = req
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let pod = Arc::clone(&peer.pod);
                let (reply, waited) = netexec::serve(
                    net,
                    &pod,
                    n,
                    &Request {
                        method: req.method.as_str(),
                        path: &req.path,
                        query: req.query,
                        content_type,
                        headers: &headers,
                        body: req.body,
                        client: &peer.client,
                    },
                    0,
                );
                (Outcome::Reply(reply), waited)
            }
            Server::Opaque => (unavailable("EOF"), Duration::ZERO),
        },
    }
}

/// The first `containerPort` declared in the pod.
fn first_container_port(pod: &Value) -> Option<String> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find_map(|p| p["containerPort"].as_u64())
        .map(|p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_like_split_scheme_name_port() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(
            split_scheme_name_port("web:8080"),
            Some(("", "web", "8080"))
        );
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }
}
