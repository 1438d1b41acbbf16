//! The real DNS servers, configured the way labs run them, each in its own container.
//!
//! Every container is published on loopback only (`127.0.0.1` for what the LAN asks,
//! `127.0.0.2` for what the outside asks), UDP and TCP on the same host port, as a
//! nameserver's `IP:PORT` in the lab file implies. Nothing here sends a packet to a
//! container's bridge address: Docker's proxy carries the queries from the published port.
//!
//! - **dnsmasq as a UniFi gateway runs it** — the LAN view. UniFi OS generates dnsmasq's
//!   configuration (`/run/dnsmasq.conf.d/dns.conf`, written by ubios-udapi-server, as quoted
//!   in unifi-utilities/unifi-common issue #207): `domain-needed`, `bogus-priv`, a cache,
//!   the upstream servers in a resolv file, and one `host-record=NAME,IP` line per local DNS
//!   record. Here the record is the Omni name and there are no upstream servers
//!   (`no-resolv`): everything else is forwarded nowhere.
//! - **BIND 9 with two views** — the other common split horizon: one server, a `lan` view for
//!   clients whose source address is in the LAN ACL and a `public` view for everyone else
//!   (BIND 9 ARM, `view` / `match-clients`: the first view whose match-clients list matches
//!   the client answers).
//! - **a plain public-view server** — BIND 9 with one zone answering the public IP.
//!
//! How BIND tells "LAN" from "other" here: every query that comes through a published port
//! reaches named from the Docker bridge's gateway address (Docker's proxy), whichever host
//! address it was sent to, so the host side cannot pick a view. The named.conf is the plain
//! source-address setup — `acl "lan" { 10.0.0.0/8; 172.16.0.0/12; 192.168.0.0/16; }` — and
//! the two published ports give two real source addresses: port 53 is named itself, so its
//! clients arrive from the bridge gateway (RFC 1918: the LAN, as a LAN client's own address
//! would be); port 5300 is a byte-for-byte socat relay inside the container that passes each
//! query on to named from 127.0.0.1, which the ACL does not hold (an outside client). named
//! chooses the view from the client address exactly as it does in a lab; nothing in its
//! configuration knows about the test. TSIG keys (`match-clients { key …; }`) would also
//! select views, but `preflight::dns` sends unsigned queries, as the VMs do.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::PortBinding;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The Omni name and its two addresses: the twin's world, so every setup answers alike.
pub const HOST: &str = twin::OMNI_HOSTNAME;
pub const LAN_IP: Ipv4Addr = twin::OMNI_LAN_IP;
pub const PUBLIC_IP: Ipv4Addr = twin::OMNI_PUBLIC_IP;

/// Host addresses the containers are published on (loopback only).
pub const LAN_SIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const PUBLIC_SIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Every container carries this label. testcontainers removes a container when the test
/// drops it (and on SIGTERM, with its `watchdog`); what a SIGKILL leaves behind is found with
/// `docker ps -a --filter label=clusterproof-test`.
const LABEL: &str = "clusterproof-test";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Host ports are chosen free on this side, then bound by Docker: retry if one was taken
/// meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// The port of BIND's relay for outside clients, inside the container.
const OUTSIDE_PORT: u16 = 5300;

/// A running server container.
pub struct Server {
    what: &'static str,
    container: ContainerAsync<GenericImage>,
}

impl Server {
    /// Freeze every process of the container: queries reach Docker's proxy and are never
    /// answered (a hung server).
    pub async fn pause(&self) -> Result<(), String> {
        self.container
            .pause()
            .await
            .map_err(|e| format!("cannot pause the {} container: {e}", self.what))
    }

    /// What the server printed, for a failure message.
    pub async fn logs(&self) -> String {
        let out = self.container.stdout_to_vec().await.unwrap_or_default();
        let err = self.container.stderr_to_vec().await.unwrap_or_default();
        format!(
            "--- {} ({}) output:\n{}{}",
            self.what,
            self.container.id(),
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    }

    pub async fn remove(self) {
        // A paused container cannot be removed gracefully by every engine: thaw it first.
        let _ = self.container.unpause().await;
        if let Err(e) = self.container.rm().await {
            eprintln!("could not remove the {} container: {e}", self.what);
        }
    }
}

/// The zone the Omni name lives in: `spaceships.work` for `omni.spaceships.work`.
fn zone() -> &'static str {
    HOST.split_once('.').map(|(_, z)| z).unwrap_or(HOST)
}

/// The label of the Omni name inside its zone: `omni`.
fn label() -> &'static str {
    HOST.split_once('.').map(|(l, _)| l).unwrap_or(HOST)
}

/// dnsmasq configured as a UniFi gateway's LAN DNS; `record` is the address its local DNS
/// record gives the Omni name, `None` for no record.
pub fn dnsmasq_conf(record: Option<Ipv4Addr>) -> String {
    let mut conf = String::from(
        "# As UniFi OS writes it (/run/dnsmasq.conf.d/dns.conf, generated by ubios-udapi-server).\n\
         domain-needed\n\
         bogus-priv\n\
         cache-size=10000\n\
         # The gateway forwards other names to its upstream servers (resolv-file=…); here there\n\
         # are none, so everything else is forwarded nowhere.\n\
         no-resolv\n\
         # The container's own /etc/hosts is not part of the gateway.\n\
         no-hosts\n",
    );
    match record {
        Some(ip) => conf.push_str(&format!(
            "# The local DNS record (UniFi Network: DNS records).\nhost-record={HOST},{ip}\n"
        )),
        // Without a record dnsmasq would pass the question upstream; it answers NXDOMAIN
        // itself only for a domain it is told to answer locally.
        None => conf.push_str(&format!(
            "# No record for the Omni name; the domain is answered locally only.\nlocal=/{}/\n",
            zone()
        )),
    }
    conf
}

/// A zone file for the Omni name's zone: SOA, NS, and the Omni name → `answer` (none for
/// `None`, so the name is NXDOMAIN).
pub fn zone_file(answer: Option<Ipv4Addr>, nameserver: Ipv4Addr) -> String {
    let zone = zone();
    let mut text = format!(
        "$TTL 60\n\
         @    IN SOA ns.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )\n\
         @    IN NS  ns.{zone}.\n\
         ns   IN A   {nameserver}\n"
    );
    if let Some(ip) = answer {
        text.push_str(&format!("{} IN A   {ip}\n", label()));
    }
    text
}

const NAMED_OPTIONS: &str = "options {
    directory \"/var/cache/bind\";
    pid-file none;
    listen-on port 53 { any; };
    listen-on-v6 { none; };
    // Authoritative only, like the servers preflight::dns asks.
    recursion no;
    allow-transfer { none; };
    dnssec-validation no;
};
// No rndc control channel.
controls { };
";

/// named.conf of the two-view server.
pub fn named_two_views() -> String {
    let zone = zone();
    format!(
        "{NAMED_OPTIONS}
// The LAN: clients from private address space.
acl \"lan\" {{ 10.0.0.0/8; 172.16.0.0/12; 192.168.0.0/16; }};

view \"lan\" {{
    match-clients {{ lan; }};
    zone \"{zone}\" {{ type primary; file \"/etc/bind/db.lan\"; }};
}};

view \"public\" {{
    match-clients {{ any; }};
    zone \"{zone}\" {{ type primary; file \"/etc/bind/db.public\"; }};
}};
"
    )
}

/// named.conf of the plain public server: one zone, no views.
pub fn named_single() -> String {
    format!(
        "{NAMED_OPTIONS}
zone \"{}\" {{ type primary; file \"/etc/bind/db.public\"; }};
",
        zone()
    )
}

/// The BIND image's start script (`/etc/bind/start`, run by busybox `sh`).
fn named_start(relay: bool) -> String {
    let mut script = String::new();
    if relay {
        script.push_str(&format!(
            "# Outside clients: port {OUTSIDE_PORT}, passed on to named from 127.0.0.1 (not in the LAN ACL).\n\
             /usr/bin/socat UDP4-RECVFROM:{OUTSIDE_PORT},fork UDP4-SENDTO:127.0.0.1:53 &\n\
             /usr/bin/socat TCP4-LISTEN:{OUTSIDE_PORT},fork,reuseaddr TCP4:127.0.0.1:53 &\n"
        ));
    }
    script.push_str("exec /usr/sbin/named -g -c /etc/bind/named.conf\n");
    script
}

/// dnsmasq as the LAN view. Returns the server and its address.
pub async fn dnsmasq(
    image: &GenericImage,
    record: Option<Ipv4Addr>,
) -> Result<(Server, SocketAddr), String> {
    let files = vec![(
        "/etc/dnsmasq.conf".to_owned(),
        dnsmasq_conf(record).into_bytes(),
    )];
    let cmd = [
        "--keep-in-foreground",
        "--log-facility=-",
        "--log-queries",
        "--pid-file=",
        "--conf-file=/etc/dnsmasq.conf",
    ];
    let (server, addrs) = start(
        "dnsmasq",
        image,
        "started, version",
        files,
        &cmd,
        &[(53, LAN_SIDE)],
    )
    .await?;
    Ok((server, addrs[0]))
}

/// BIND 9 with two views. Returns the server, the address LAN clients use and the address
/// outside clients use.
pub async fn bind9_two_views(
    docker: &Docker,
    image: &GenericImage,
    lan_record: Option<Ipv4Addr>,
    public_record: Ipv4Addr,
) -> Result<(Server, SocketAddr, SocketAddr), String> {
    let files = vec![
        (
            "/etc/bind/named.conf".to_owned(),
            named_two_views().into_bytes(),
        ),
        (
            "/etc/bind/db.lan".to_owned(),
            zone_file(lan_record, Ipv4Addr::new(192, 168, 10, 53)).into_bytes(),
        ),
        (
            "/etc/bind/db.public".to_owned(),
            zone_file(Some(public_record), Ipv4Addr::new(100, 64, 0, 53)).into_bytes(),
        ),
        ("/etc/bind/start".to_owned(), named_start(true).into_bytes()),
    ];
    let (server, addrs) = start(
        "BIND 9 (two views)",
        image,
        "all zones loaded",
        files,
        &[],
        &[(53, LAN_SIDE), (OUTSIDE_PORT, PUBLIC_SIDE)],
    )
    .await?;
    // Queries from the published LAN port come from the bridge's gateway (Docker's proxy).
    // The LAN ACL holds it only if the bridge is in private address space (Docker's default
    // pools are): say so plainly rather than fail on a wrong answer.
    let gateways = bridge_gateways(docker, &server).await;
    if !gateways.iter().any(|g| g.is_private()) {
        let logs = server.logs().await;
        server.remove().await;
        return Err(format!(
            "the container's network gateway ({gateways:?}) is not in RFC 1918 space, so the \
             BIND \"lan\" ACL cannot match the queries from the published LAN port\n{logs}"
        ));
    }
    Ok((server, addrs[0], addrs[1]))
}

/// The IPv4 gateways of the container's networks, as the engine reports them.
async fn bridge_gateways(docker: &Docker, server: &Server) -> Vec<Ipv4Addr> {
    let inspected = docker
        .inspect_container(server.container.id(), None)
        .await
        .ok();
    inspected
        .and_then(|c| c.network_settings)
        .and_then(|n| n.networks)
        .into_iter()
        .flat_map(|networks| networks.into_values())
        .filter_map(|endpoint| endpoint.gateway?.parse().ok())
        .collect()
}

/// BIND 9 serving only the public view.
pub async fn bind9_public(
    image: &GenericImage,
    record: Ipv4Addr,
) -> Result<(Server, SocketAddr), String> {
    let files = vec![
        (
            "/etc/bind/named.conf".to_owned(),
            named_single().into_bytes(),
        ),
        (
            "/etc/bind/db.public".to_owned(),
            zone_file(Some(record), Ipv4Addr::new(100, 64, 0, 53)).into_bytes(),
        ),
        (
            "/etc/bind/start".to_owned(),
            named_start(false).into_bytes(),
        ),
    ];
    let (server, addrs) = start(
        "BIND 9 (public view)",
        image,
        "all zones loaded",
        files,
        &[],
        &[(53, PUBLIC_SIDE)],
    )
    .await?;
    Ok((server, addrs[0]))
}

/// Starts a container from `image` with `files` copied in, once `ready` is printed.
/// `publish`: container port → host address; each is published for UDP and TCP on one free
/// host port. Returns the host addresses in the order of `publish`.
async fn start(
    what: &'static str,
    image: &GenericImage,
    ready: &str,
    files: Vec<(String, Vec<u8>)>,
    cmd: &[&str],
    publish: &[(u16, Ipv4Addr)],
) -> Result<(Server, Vec<SocketAddr>), String> {
    let mut last_error = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let mut chosen = Vec::new();
        for (container_port, host_ip) in publish {
            chosen.push((*container_port, *host_ip, free_port(*host_ip)?));
        }
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed = image
            .clone()
            .with_wait_for(WaitFor::message_on_either_std(ready));
        for (container_port, host_ip, host_port) in &chosen {
            for proto in ["udp", "tcp"] {
                bindings.insert(
                    format!("{container_port}/{proto}"),
                    Some(vec![PortBinding {
                        host_ip: Some(host_ip.to_string()),
                        host_port: Some(host_port.to_string()),
                    }]),
                );
            }
            exposed = exposed
                .with_exposed_port(container_port.udp())
                .with_exposed_port(container_port.tcp());
        }
        let mut request = exposed
            .with_label(LABEL, "dns_containers")
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_host_config_modifier(move |hc| {
                // Only these bindings, on loopback: never publish on every address.
                hc.publish_all_ports = Some(false);
                hc.port_bindings = Some(bindings.clone());
            });
        for (path, bytes) in &files {
            request = request.with_copy_to(path.as_str(), bytes.clone());
        }
        if !cmd.is_empty() {
            request = request.with_cmd(cmd.iter().copied());
        }
        match testcontainers::runners::AsyncRunner::start(request).await {
            Ok(container) => {
                let addrs = chosen
                    .iter()
                    .map(|(_, ip, port)| SocketAddr::new(IpAddr::V4(*ip), *port))
                    .collect();
                return Ok((Server { what, container }, addrs));
            }
            Err(e) => {
                let text = e.to_string();
                if text.contains("already allocated") || text.contains("address already in use") {
                    last_error = text;
                    continue;
                }
                return Err(format!("starting the {what} container failed: {text}"));
            }
        }
    }
    Err(format!(
        "starting the {what} container failed: no free host port after {PORT_ATTEMPTS} tries ({last_error})"
    ))
}

/// A port free for both UDP and TCP on `ip` right now.
pub fn free_port(ip: Ipv4Addr) -> Result<u16, String> {
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        let udp = std::net::UdpSocket::bind((ip, 0))
            .map_err(|e| format!("cannot bind a UDP port on {ip}: {e}"))?;
        let port = udp
            .local_addr()
            .map_err(|e| format!("cannot read a bound port: {e}"))?
            .port();
        match std::net::TcpListener::bind((ip, port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "no port free for UDP and TCP on {ip}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}
