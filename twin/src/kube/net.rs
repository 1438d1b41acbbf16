//! The pod network as Cilium makes it on the twin's nodes (tunnel mode, kube-proxy
//! replacement): what answers at an address and port, and whether the path there works.
//!
//! A connection to a pod IP works when the destination's node is up (its kubelet runs: the
//! VM is on), both ends' nodes have their pod network (the Cilium agent runs there and the
//! kubelet found the CNI configuration), no fault drops traffic between the two nodes, and a
//! running container of the pod listens on the port; with nothing listening the pod's stack
//! answers with a reset (`connect: connection refused`); every other failure is a dropped
//! packet (`i/o timeout` once the client gives up). A Service's ClusterIP is translated to
//! one of its ready backends by the socket load balancer; a Service without backends is
//! rejected (Cilium's `service-no-backend-response: reject` default, helm value
//! `serviceNoBackendResponse`): `connection refused`. Node IPs reach host-network pods.
//! Cluster DNS names (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`) resolve to
//! ClusterIPs when CoreDNS (`kube-dns`, 10.96.0.10:53/UDP) is reachable from the pod.
//!
//! What listens: the agnhost `netexec` server ([`super::netexec`]) on its HTTP and UDP ports,
//! and any other container's declared `containerPort`s, whose protocol the twin does not
//! speak (they accept and close: `EOF`).

use std::sync::Arc;

use serde_json::Value;

use super::controllers::{Sim, gvr_pods, name_of, ns_of};
use super::netexec::Netexec;
use super::select::Filter;
use super::store::Store;
use super::types::Gvr;

/// Cluster DNS (Talos's CoreDNS Service).
pub(crate) const DNS_IP: &str = "10.96.0.10";
pub(crate) const CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

/// Where a connection comes from.
#[derive(Clone, Debug)]
pub(crate) enum From {
    /// The API server of a control plane (host network), proxying.
    ApiServer,
    Pod(Arc<Value>),
}

/// What serves a port.
#[derive(Clone, Debug)]
pub(crate) enum Server {
    Netexec(Netexec),
    /// A declared container port of an image the twin does not emulate.
    Opaque,
}

/// The far end of an open connection.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub pod: Arc<Value>,
    pub server: Server,
    /// `ip:port` of the connection's source, as the server sees it.
    pub client: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Conn {
    Open(Peer),
    Refused,
    Timeout,
}

/// A read-mostly view of the world's network, under the world's lock.
pub(crate) struct Net<'a> {
    pub store: &'a Store,
    pub sim: &'a mut Sim,
    pub scale: f64,
}

fn services() -> Gvr {
    Gvr::new("", "v1", "services")
}

/// What a container listens on: (protocol, port, server).
fn listeners(container: &Value) -> Vec<(Proto, u16, Server)> {
    let mut out = Vec::new();
    if let Some(n) = Netexec::recognise(container) {
        out.push((Proto::Tcp, n.http_port, Server::Netexec(n.clone())));
        if let Some(u) = n.udp_port {
            out.push((Proto::Udp, u, Server::Netexec(n.clone())));
        }
    }
    for p in container["ports"].as_array().into_iter().flatten() {
        let proto = if p["protocol"] == "UDP" {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        if let Some(port) = p["containerPort"]
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            && !out.iter().any(|(pr, po, _)| *pr == proto && *po == port)
        {
            out.push((proto, port, Server::Opaque));
        }
    }
    out
}

fn active(p: &Value) -> bool {
    p["metadata"].get("deletionTimestamp").is_none()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn host_network(p: &Value) -> bool {
    p["spec"]["hostNetwork"].as_bool() == Some(true)
}

impl Net<'_> {
    fn node_ip(&self, node: &str) -> Option<String> {
        self.sim.nodes.get(node).map(|n| n.ip())
    }

    /// The control plane whose API server handles proxied requests: the first live one.
    fn api_node(&self) -> Option<String> {
        self.sim
            .nodes
            .iter()
            .filter(|(_, n)| n.control_plane && n.alive)
            .min_by_key(|(_, n)| n.index)
            .map(|(name, _)| name.clone())
    }

    /// The node a connection leaves from, if the twin knows it.
    fn source_node(&self, from: &From) -> Option<String> {
        match from {
            From::ApiServer => self.api_node(),
            From::Pod(p) => p["spec"]["nodeName"].as_str().map(str::to_string),
        }
    }

    /// The source address a server sees: `ip:ephemeral-port`.
    pub fn client_addr(&mut self, from: &From) -> String {
        let ip = match from {
            From::Pod(p) if !host_network(p) => p["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            _ => self
                .source_node(from)
                .and_then(|n| self.node_ip(&n))
                .unwrap_or_else(|| "10.5.0.2".into()),
        };
        self.sim.next_port = self.sim.next_port.wrapping_add(1);
        format!("{ip}:{}", 32768 + self.sim.next_port % 28232)
    }

    /// Connect from `from` to `ip:port`.
    pub fn connect(&mut self, from: &From, ip: &str, port: u16, proto: Proto) -> Conn {
        if let Some(svc) = self
            .store
            .list(&services(), None, &Filter::default())
            .into_iter()
            .find(|s| s["spec"]["clusterIP"] == ip)
        {
            return self.via_service(from, &svc, port, proto);
        }
        let target = self
            .store
            .list(&gvr_pods(), None, &Filter::default())
            .into_iter()
            .filter(|p| active(p) && !host_network(p))
            .find(|p| p["status"]["podIP"] == ip);
        if let Some(pod) = target {
            return self.dial_pod(from, port, proto, pod);
        }
        let node = self
            .sim
            .nodes
            .iter()
            .find(|(_, n)| n.ip() == ip)
            .map(|(name, _)| name.clone());
        if let Some(node) = node {
            let on_host: Vec<Arc<Value>> = self
                .store
                .list(&gvr_pods(), None, &Filter::default())
                .into_iter()
                .filter(|p| active(p) && host_network(p) && p["spec"]["nodeName"] == node.as_str())
                .collect();
            return self.dial_host(from, &node, port, proto, &on_host);
        }
        Conn::Timeout
    }

    /// The socket load balancer: a backend of the Service for this port.
    fn via_service(&mut self, from: &From, svc: &Value, port: u16, proto: Proto) -> Conn {
        let want = if proto == Proto::Udp { "UDP" } else { "TCP" };
        let Some(sp) = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["port"].as_u64() == Some(u64::from(port))
                    && p["protocol"].as_str().unwrap_or("TCP") == want
            })
        else {
            // No frontend for this port: nothing translates the packet.
            return Conn::Timeout;
        };
        let backends = endpoints(self.store, svc, sp["name"].as_str().unwrap_or_default());
        if backends.is_empty() {
            return Conn::Refused;
        }
        self.sim.lb_turn = self.sim.lb_turn.wrapping_add(1);
        let (pod, _, bport) = backends[(self.sim.lb_turn % backends.len() as u64) as usize].clone();
        if host_network(&pod) {
            let node = pod["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return self.dial_host(from, &node, bport, proto, &[pod]);
        }
        self.dial_pod(from, bport, proto, pod)
    }

    /// Whether the path from `from` to a pod on `node` carries pod traffic.
    fn path_to(&self, from: &From, node: &str, pod_traffic: bool) -> bool {
        let Some(n) = self.sim.nodes.get(node) else {
            return false;
        };
        if !n.alive || (pod_traffic && !self.sim.pod_network(node)) {
            return false;
        }
        let src = self.source_node(from);
        match (&src, from) {
            (Some(s), _) if s == node => true,
            (Some(s), From::Pod(p)) => {
                (host_network(p) || self.sim.pod_network(s)) && !self.sim.drops(s, node)
            }
            // Host-network traffic to a remote pod goes through the tunnel too.
            (Some(s), From::ApiServer) => {
                (!pod_traffic || self.sim.pod_network(s)) && !self.sim.drops(s, node)
            }
            (None, _) => true,
        }
    }

    fn dial_pod(&mut self, from: &From, port: u16, proto: Proto, pod: Arc<Value>) -> Conn {
        let node = pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !self.path_to(from, &node, true) {
            return Conn::Timeout;
        }
        self.listening(from, port, proto, &[pod])
    }

    fn dial_host(
        &mut self,
        from: &From,
        node: &str,
        port: u16,
        proto: Proto,
        pods: &[Arc<Value>],
    ) -> Conn {
        if !self.path_to(from, node, false) {
            return Conn::Timeout;
        }
        self.listening(from, port, proto, pods)
    }

    /// A running container of one of `pods` listening on the port, or a reset.
    fn listening(&mut self, from: &From, port: u16, proto: Proto, pods: &[Arc<Value>]) -> Conn {
        for pod in pods {
            let Some(rt) = self
                .sim
                .runtimes
                .get(pod["metadata"]["uid"].as_str().unwrap_or_default())
            else {
                continue;
            };
            for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or_default();
                let hit = listeners(c)
                    .into_iter()
                    .find(|(pr, po, _)| *pr == proto && *po == port);
                if let Some((_, _, server)) = hit
                    && rt.running(name)
                {
                    let client = self.client_addr(from);
                    return Conn::Open(Peer {
                        pod: Arc::clone(pod),
                        server,
                        client,
                    });
                }
            }
        }
        Conn::Refused
    }

    /// Resolve `host` as a pod's resolver does (`ClusterFirst`: CoreDNS, with the search
    /// path `<ns>.svc.cluster.local svc.cluster.local cluster.local`). Errors are Go's
    /// resolver messages; `Err(.., true)` means the lookup timed out.
    pub fn resolve(&mut self, from: &From, host: &str) -> Result<String, (String, bool)> {
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Ok(host.to_string());
        }
        let client = self.client_addr(from);
        match self.connect(from, DNS_IP, 53, Proto::Udp) {
            Conn::Open(_) => {}
            Conn::Refused => {
                return Err((
                    format!(
                        "lookup {host} on {DNS_IP}:53: read udp {client}->{DNS_IP}:53: read: connection refused"
                    ),
                    false,
                ));
            }
            Conn::Timeout => {
                return Err((
                    format!(
                        "lookup {host} on {DNS_IP}:53: read udp {client}->{DNS_IP}:53: i/o timeout"
                    ),
                    true,
                ));
            }
        }
        let ns = match from {
            From::Pod(p) => ns_of(p).to_string(),
            From::ApiServer => "default".into(),
        };
        let name = host.trim_end_matches('.');
        let parts: Vec<&str> = name.split('.').collect();
        let suffix = format!("svc.{CLUSTER_DOMAIN}");
        let (svc, svc_ns) = match parts.as_slice() {
            [s] => (s.to_string(), ns),
            [s, n] => (s.to_string(), n.to_string()),
            [s, n, "svc"] => (s.to_string(), n.to_string()),
            [s, n, rest @ ..] if rest.join(".") == suffix => (s.to_string(), n.to_string()),
            _ => return Err((format!("lookup {host} on {DNS_IP}:53: no such host"), false)),
        };
        match self.store.get(&services(), &svc_ns, &svc) {
            Some(s)
                if s["spec"]["clusterIP"]
                    .as_str()
                    .is_some_and(|ip| ip != "None") =>
            {
                Ok(s["spec"]["clusterIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string())
            }
            _ => Err((format!("lookup {host} on {DNS_IP}:53: no such host"), false)),
        }
    }
}

/// A Service's ready backends for the service port named `port_name`: (pod, ip, port). From
/// its Endpoints object when one exists (the endpoints controller's), otherwise from the
/// selector as that controller would compute it.
pub(crate) fn endpoints(
    store: &Store,
    svc: &Value,
    port_name: &str,
) -> Vec<(Arc<Value>, String, u16)> {
    let ns = ns_of(svc);
    let pods = store.list(&gvr_pods(), Some(ns), &Filter::default());
    let by_name = |n: &str| pods.iter().find(|p| name_of(p) == n).cloned();
    if let Some(eps) = store.get(&Gvr::new("", "v1", "endpoints"), ns, name_of(svc)) {
        let mut out = Vec::new();
        for ss in eps["subsets"].as_array().into_iter().flatten() {
            let Some(port) = ss["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for a in ss["addresses"].as_array().into_iter().flatten() {
                let ip = a["ip"].as_str().unwrap_or_default().to_string();
                if let Some(pod) = a["targetRef"]["name"].as_str().and_then(by_name) {
                    out.push((pod, ip, port));
                }
            }
        }
        return out;
    }
    let Some(sp) = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
    else {
        return Vec::new();
    };
    let selector = &svc["spec"]["selector"];
    pods.iter()
        .filter(|p| active(p) && super::controllers::workloads_selects(selector, p))
        .filter(|p| super::controllers::pod_ready(p))
        .filter_map(|p| {
            let ip = p["status"]["podIP"].as_str()?.to_string();
            let port = target_port(p, &sp["targetPort"], &sp["port"])?;
            Some((Arc::clone(p), ip, port))
        })
        .collect()
}

/// A service port's `targetPort` on a pod: a number, or the name of a container port.
fn target_port(pod: &Value, target: &Value, port: &Value) -> Option<u16> {
    let t = if target.is_null() { port } else { target };
    if let Some(n) = t.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = t.as_str()?;
    if let Ok(n) = name.parse::<u16>() {
        return Some(n);
    }
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}
