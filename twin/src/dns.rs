//! The twin's split-horizon DNS: two small authoritative servers on loopback.
//!
//! A real lab answers the Omni name differently depending on who asks: the LAN resolver
//! gives the LAN address, the public resolver the public one. The twin reproduces this with
//! two views on distinct loopback addresses (e.g. `127.0.53.1` for the LAN and `127.0.53.2`
//! for the public view) that share one port, each serving UDP and TCP. Each view is
//! authoritative for the hostname's parent domain (`spaceships.work.` for
//! `omni.spaceships.work`): it has an SOA record, so other names in the zone get a proper
//! NXDOMAIN, and one A (or AAAA) record for the hostname.
//!
//! Faults are chosen at start through [`DnsViewsSpec`]: `dns-lan-wrong-answer`, for
//! instance, is a LAN view started with the public address as its `lan_answer`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// Time-to-live of every record the views serve, and the SOA minimum (negative caching).
const TTL: u32 = 60;
/// Serial of the zone's SOA record.
const SERIAL: u32 = 1;
/// How long a TCP client may stay idle before the server closes the connection.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-connection buffer for outgoing TCP responses.
const TCP_RESPONSE_BUFFER: usize = 4096;
/// How many ports to try when the caller lets the views pick one (port 0).
const PORT_ATTEMPTS: usize = 8;

/// What the two views serve and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsViewsSpec {
    /// The name both views answer for, e.g. `omni.spaceships.work` (a trailing dot is
    /// optional). Its parent domain becomes the zone, so it needs at least two labels.
    pub hostname: String,
    /// Loopback address of the LAN view, e.g. `127.0.53.1`.
    pub lan_bind: IpAddr,
    /// Loopback address of the public view, e.g. `127.0.53.2`; must differ from `lan_bind`.
    pub public_bind: IpAddr,
    /// Port both views listen on (UDP and TCP). 0 picks a port that is free on both
    /// addresses.
    pub port: u16,
    /// The LAN view's answer for `hostname` (an A record, or AAAA for IPv6).
    pub lan_answer: IpAddr,
    /// The public view's answer for `hostname` (an A record, or AAAA for IPv6).
    pub public_answer: IpAddr,
}

/// The two running views. Dropping this stops the servers too; [`DnsViews::shutdown`]
/// stops them and waits until they have finished.
pub struct DnsViews {
    lan: View,
    public: View,
}

/// One running authoritative server.
struct View {
    name: &'static str,
    addr: SocketAddr,
    server: Server<Catalog>,
}

/// The four sockets of both views, bound to the same port.
struct Sockets {
    lan_udp: UdpSocket,
    lan_tcp: TcpListener,
    public_udp: UdpSocket,
    public_tcp: TcpListener,
}

impl DnsViews {
    /// Binds both views (UDP and TCP each) and starts serving.
    ///
    /// Fails with `InvalidInput` when the hostname is not a valid DNS name with a parent
    /// domain, or when both views would share an address; otherwise with the error of the
    /// last bind that failed (after a few ports were tried, when `spec.port` is 0).
    pub async fn start(spec: DnsViewsSpec) -> io::Result<DnsViews> {
        if spec.lan_bind == spec.public_bind {
            return Err(invalid_input(format!(
                "the LAN and public DNS views need distinct addresses, both are {}",
                spec.lan_bind
            )));
        }
        let (zone, host) = zone_and_host(&spec.hostname)?;
        let lan_catalog = catalog(&zone, &host, spec.lan_answer)?;
        let public_catalog = catalog(&zone, &host, spec.public_answer)?;
        let sockets = bind_pair(spec.lan_bind, spec.public_bind, spec.port).await?;
        let port = sockets.lan_udp.local_addr()?.port();

        let lan = View::start(
            "lan",
            SocketAddr::new(spec.lan_bind, port),
            sockets.lan_udp,
            sockets.lan_tcp,
            lan_catalog,
        );
        let public = View::start(
            "public",
            SocketAddr::new(spec.public_bind, port),
            sockets.public_udp,
            sockets.public_tcp,
            public_catalog,
        );
        tracing::info!(
            zone = %zone,
            host = %host,
            lan = %lan.addr,
            lan_answer = %spec.lan_answer,
            public = %public.addr,
            public_answer = %spec.public_answer,
            "twin DNS views started"
        );
        Ok(DnsViews { lan, public })
    }

    /// Address and port of the LAN view.
    pub fn lan_addr(&self) -> SocketAddr {
        self.lan.addr
    }

    /// Address and port of the public view.
    pub fn public_addr(&self) -> SocketAddr {
        self.public.addr
    }

    /// Stops both views and waits until their sockets are closed.
    pub async fn shutdown(self) {
        let DnsViews { lan, public } = self;
        futures::join!(lan.shutdown(), public.shutdown());
    }
}

impl std::fmt::Debug for DnsViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsViews")
            .field("lan", &self.lan.addr)
            .field("public", &self.public.addr)
            .finish()
    }
}

impl View {
    fn start(
        name: &'static str,
        addr: SocketAddr,
        udp: UdpSocket,
        tcp: TcpListener,
        catalog: Catalog,
    ) -> View {
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        View { name, addr, server }
    }

    async fn shutdown(mut self) {
        match self.server.shutdown_gracefully().await {
            Ok(()) => tracing::debug!(view = self.name, addr = %self.addr, "DNS view stopped"),
            Err(e) => tracing::warn!(
                view = self.name,
                addr = %self.addr,
                error = %e,
                "DNS view stopped with an error"
            ),
        }
    }
}

/// Parses `hostname` and returns (zone, host): the parent domain and the host name, both
/// fully qualified.
fn zone_and_host(hostname: &str) -> io::Result<(Name, Name)> {
    let mut host = Name::from_utf8(hostname)
        .map_err(|e| invalid_input(format!("{hostname:?} is not a valid DNS name: {e}")))?;
    host.set_fqdn(true);
    if host.num_labels() < 2 {
        return Err(invalid_input(format!(
            "{hostname:?} has no parent domain to serve as the zone: use a name like omni.example.com"
        )));
    }
    Ok((host.base_name(), host))
}

/// A catalog with one zone: SOA at the apex plus `host` → `answer`.
fn catalog(zone: &Name, host: &Name, answer: IpAddr) -> io::Result<Catalog> {
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        zone.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        label(zone, "ns"),
        label(zone, "hostmaster"),
        SERIAL,
        3600,
        600,
        86_400,
        TTL,
    );
    for record in [
        Record::from_rdata(zone.clone(), TTL, RData::SOA(soa)),
        Record::from_rdata(host.clone(), TTL, RData::from(answer)),
    ] {
        if !handler.upsert_mut(record.clone(), SERIAL) {
            return Err(io::Error::other(format!(
                "the twin DNS zone {zone} refused the record {record}"
            )));
        }
    }

    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
    catalog.upsert(LowerName::from(zone.clone()), vec![handler]);
    Ok(catalog)
}

/// `first` prepended to `zone` (`ns` + `spaceships.work.` → `ns.spaceships.work.`); the zone
/// itself if the label does not fit.
fn label(zone: &Name, first: &str) -> Name {
    Name::from_labels([first])
        .and_then(|l| l.append_domain(zone))
        .unwrap_or_else(|_| zone.clone())
}

/// Binds UDP and TCP on both addresses, on `port` or (for 0) on a port free on both.
async fn bind_pair(lan: IpAddr, public: IpAddr, port: u16) -> io::Result<Sockets> {
    if port != 0 {
        return bind_all(lan, public, port).await;
    }
    let mut last_error = None;
    for attempt in 1..=PORT_ATTEMPTS {
        let lan_udp = UdpSocket::bind(SocketAddr::new(lan, 0)).await?;
        let port = lan_udp.local_addr()?.port();
        match bind_rest(lan_udp, lan, public, port).await {
            Ok(sockets) => return Ok(sockets),
            Err(e) => {
                tracing::debug!(attempt, port, error = %e, "DNS views: port not free on both addresses, trying another");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port tried")))
}

async fn bind_all(lan: IpAddr, public: IpAddr, port: u16) -> io::Result<Sockets> {
    let lan_udp = UdpSocket::bind(SocketAddr::new(lan, port))
        .await
        .map_err(|e| bind_error(e, "UDP", lan, port))?;
    bind_rest(lan_udp, lan, public, port).await
}

async fn bind_rest(
    lan_udp: UdpSocket,
    lan: IpAddr,
    public: IpAddr,
    port: u16,
) -> io::Result<Sockets> {
    let public_udp = UdpSocket::bind(SocketAddr::new(public, port))
        .await
        .map_err(|e| bind_error(e, "UDP", public, port))?;
    let lan_tcp = TcpListener::bind(SocketAddr::new(lan, port))
        .await
        .map_err(|e| bind_error(e, "TCP", lan, port))?;
    let public_tcp = TcpListener::bind(SocketAddr::new(public, port))
        .await
        .map_err(|e| bind_error(e, "TCP", public, port))?;
    Ok(Sockets {
        lan_udp,
        lan_tcp,
        public_udp,
        public_tcp,
    })
}

/// Keeps the error kind, adds which socket failed.
fn bind_error(e: io::Error, protocol: &str, ip: IpAddr, port: u16) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot bind the twin DNS view on {protocol} {ip}:{port}: {e}"),
    )
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_is_the_parent_domain() {
        let (zone, host) = zone_and_host("omni.spaceships.work").unwrap();
        assert_eq!(zone.to_string(), "spaceships.work.");
        assert_eq!(host.to_string(), "omni.spaceships.work.");
        assert_eq!(label(&zone, "ns").to_string(), "ns.spaceships.work.");
        let (zone, _) = zone_and_host("omni.spaceships.work.").unwrap();
        assert_eq!(zone.to_string(), "spaceships.work.");
    }

    #[test]
    fn single_label_and_malformed_names_are_refused() {
        for bad in ["omni", "a..b", ""] {
            let e = zone_and_host(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
        }
    }
}
