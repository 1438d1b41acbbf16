//! DNS driver: ask one given nameserver what a name resolves to.
//!
//! Split-horizon DNS is a common cause of a half-working Omni install: machines on the LAN
//! must reach Omni at its LAN address while the public view hands out another one.
//! `preflight::dns` uses [`DnsClient`] to ask the LAN resolver and the public resolver, one at
//! a time, what the Omni name resolves to, and compares the answers with the lab file.
//!
//! A [`DnsClient`] talks to exactly the nameserver it was given (UDP, and TCP when an answer
//! is truncated). It never reads `/etc/resolv.conf` or `/etc/hosts`, keeps no cache, sends
//! each question once and gives up after the given timeout, so an answer always reflects what
//! that server says right now.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;

/// Why a lookup gave no addresses. Every message names the name asked for and the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The server answered, but has no A or AAAA record for the name (NXDOMAIN or an empty
    /// answer).
    #[error(
        "{server} has no A or AAAA record for {name} (NXDOMAIN or empty answer): add the record to the zone that server serves, or check the name for typos"
    )]
    NoSuchName {
        /// The name asked for, as given.
        name: String,
        /// The nameserver asked.
        server: SocketAddr,
    },
    /// The server did not answer in time.
    #[error(
        "no answer from {server} for {name} within {}: check that a DNS server listens on that address and port and that no firewall drops the queries",
        humantime::format_duration(*.timeout)
    )]
    Timeout {
        /// The name asked for, as given.
        name: String,
        /// The nameserver asked.
        server: SocketAddr,
        /// How long the client waited.
        timeout: Duration,
    },
    /// Anything else: the name is malformed, the server refused or failed the query, the
    /// connection broke, or the answer could not be read.
    #[error("could not ask {server} for {name}: {reason}")]
    Failed {
        /// The name asked for, as given.
        name: String,
        /// The nameserver asked.
        server: SocketAddr,
        /// What went wrong, in words.
        reason: String,
    },
}

/// Asks one nameserver for the A and AAAA records of a name.
#[derive(Debug, Clone)]
pub struct DnsClient {
    server: SocketAddr,
    timeout: Duration,
}

impl DnsClient {
    /// A client for the nameserver at `server` (address and port) that waits at most
    /// `timeout` for each lookup.
    pub fn new(server: SocketAddr, timeout: Duration) -> Self {
        Self { server, timeout }
    }

    /// The nameserver this client asks.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The addresses (A and AAAA records) `server` gives for `name`, sorted, without
    /// duplicates and never empty.
    ///
    /// `name` is taken as fully qualified (`omni.example.com` and `omni.example.com.` are the
    /// same); no search domain is appended.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let fqdn = self.parse_name(name)?;
        let resolver = self.resolver().map_err(|e| self.failed(name, &e))?;
        tracing::debug!(server = %self.server, name, timeout = ?self.timeout, "DNS lookup");

        // The resolver has its own deadline (`options.timeout`), but the A and AAAA questions
        // and a TCP retry after truncation are separate requests: bound the whole lookup too.
        let answer = match tokio::time::timeout(self.timeout, resolver.lookup_ip(fqdn)).await {
            Err(_elapsed) => return Err(self.timed_out(name)),
            Ok(answer) => answer,
        };
        let mut ips: Vec<IpAddr> = match answer {
            Ok(lookup) => lookup.iter().collect(),
            Err(e) if e.is_no_records_found() => return Err(self.no_such_name(name)),
            Err(NetError::Timeout) => return Err(self.timed_out(name)),
            Err(e) => return Err(self.failed(name, &e)),
        };
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            return Err(self.no_such_name(name));
        }
        tracing::debug!(server = %self.server, name, ?ips, "DNS answer");
        Ok(ips)
    }

    fn parse_name(&self, name: &str) -> Result<Name, DnsError> {
        let invalid = |reason: String| DnsError::Failed {
            name: name.to_owned(),
            server: self.server,
            reason: format!("{name:?} is not a valid DNS name ({reason})"),
        };
        if name.trim().is_empty() || name == "." {
            return Err(invalid("it is empty".to_owned()));
        }
        let mut fqdn = Name::from_utf8(name).map_err(|e| invalid(e.to_string()))?;
        fqdn.set_fqdn(true);
        Ok(fqdn)
    }

    /// A resolver that asks only `self.server`, once, without cache, hosts file or
    /// resolv.conf.
    fn resolver(&self) -> Result<TokioResolver, NetError> {
        let mut ns = NameServerConfig::udp_and_tcp(self.server.ip());
        for connection in &mut ns.connections {
            connection.port = self.server.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = self.timeout;
        // `attempts` counts retries after the first try: 0 means a single try.
        options.attempts = 0;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.num_concurrent_reqs = 1;
        options.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        // An authoritative server is asked about its own zone: no recursion wanted.
        options.recursion_desired = false;
        builder.build()
    }

    fn no_such_name(&self, name: &str) -> DnsError {
        DnsError::NoSuchName {
            name: name.to_owned(),
            server: self.server,
        }
    }

    fn timed_out(&self, name: &str) -> DnsError {
        DnsError::Timeout {
            name: name.to_owned(),
            server: self.server,
            timeout: self.timeout,
        }
    }

    fn failed(&self, name: &str, error: &NetError) -> DnsError {
        DnsError::Failed {
            name: name.to_owned(),
            server: self.server,
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_name_and_the_server() {
        let server: SocketAddr = "127.0.53.1:5353".parse().unwrap();
        let timeout = DnsError::Timeout {
            name: "omni.spaceships.work".into(),
            server,
            timeout: Duration::from_secs(1),
        };
        assert!(
            timeout
                .to_string()
                .starts_with("no answer from 127.0.53.1:5353 for omni.spaceships.work within 1s")
        );
        let missing = DnsError::NoSuchName {
            name: "omni.spaceships.work".into(),
            server,
        };
        let text = missing.to_string();
        assert!(text.contains("127.0.53.1:5353") && text.contains("omni.spaceships.work"));
    }

    #[tokio::test]
    async fn malformed_name_is_an_error_not_a_query() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let client = DnsClient::new(server, Duration::from_millis(100));
        for bad in ["", "a..b"] {
            match client.lookup(bad).await {
                Err(DnsError::Failed { reason, .. }) => {
                    assert!(reason.contains("not a valid DNS name"), "{reason}")
                }
                other => panic!("{bad:?}: expected Failed, got {other:?}"),
            }
        }
    }
}
