//! `preflight::dns` against DNS servers nobody here wrote: dnsmasq configured as a UniFi
//! gateway's LAN DNS, BIND 9 with two views, and a plain public BIND, each in a container
//! built from Debian's packages (images.rs, servers.rs). The twin's own DNS views
//! (`twin::dns`) go through the very same cases with the very same expectations, so the twin
//! and the real servers must agree.
//!
//! Each test starts the twin's Proxmox (for the hosts' resolver lists, `GET /nodes/{n}/dns`),
//! points the lab file's `[dns]` (`lan_resolvers`, `lan_view`, `public_view`) and every
//! host's resolver at the servers, and runs the `preflight::dns` scenario on that lab.
//!
//! Test names are `SETUP::CASE`. The container tests need a Docker engine and the binaries
//! `.ci/dns-servers` puts in place; without them they fail and say so. Set
//! `CLUSTERPROOF_SKIP_CONTAINER_TESTS=1` to have them reported as skipped instead (the twin
//! tests still run).

mod images;
mod servers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use harness::events::EventBus;
use harness::scenario::{ConnectOptions, Context, DNS_TIMEOUT, Lab, Outcome, Verdict};
use harness::spec::{LabSpec, Overrides};
use libtest_mimic::{Arguments, Failed, Trial};
use servers::{HOST, LAN_IP, PUBLIC_IP, Server};

/// Which servers answer the LAN and the public view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// The twin's views (`twin::dns::DnsViews`) on loopback.
    Twin,
    /// dnsmasq as the UniFi gateway (LAN view) and a plain public BIND.
    Dnsmasq,
    /// One BIND 9 with a `lan` and a `public` view.
    Bind9Views,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::Twin, Setup::Dnsmasq, Setup::Bind9Views];

    fn name(self) -> &'static str {
        match self {
            Setup::Twin => "twin",
            Setup::Dnsmasq => "dnsmasq",
            Setup::Bind9Views => "bind9_views",
        }
    }

    fn needs_engine(self) -> bool {
        self != Setup::Twin
    }
}

/// What is wrong with the lab, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Correct,
    /// The LAN server's record gives the public (Tailscale) address.
    LanAnswersPublicIp,
    /// The LAN server has no record for the Omni name.
    LanAnswersNxdomain,
    /// The LAN server is hung: queries reach it and are never answered.
    LanDoesNotAnswer,
    /// The Proxmox hosts resolve through the public server.
    HostsUsePublicResolver,
}

impl Case {
    const ALL: [Case; 5] = [
        Case::Correct,
        Case::LanAnswersPublicIp,
        Case::LanAnswersNxdomain,
        Case::LanDoesNotAnswer,
        Case::HostsUsePublicResolver,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Correct => "correct_setup_passes",
            Case::LanAnswersPublicIp => "lan_answers_the_public_ip",
            Case::LanAnswersNxdomain => "lan_answers_nxdomain",
            Case::LanDoesNotAnswer => "lan_does_not_answer",
            Case::HostsUsePublicResolver => "hosts_use_the_public_resolver",
        }
    }

    /// The LAN server's record for the Omni name.
    fn lan_record(self) -> Option<Ipv4Addr> {
        match self {
            Case::LanAnswersPublicIp => Some(PUBLIC_IP),
            Case::LanAnswersNxdomain => None,
            _ => Some(LAN_IP),
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let opt_out = std::env::var(images::OPT_OUT).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut trials = Vec::new();
    for setup in Setup::ALL {
        for case in Case::ALL {
            let name = format!("{}::{}", setup.name(), case.name());
            trials.push(
                Trial::test(name, move || run(setup, case))
                    .with_ignored_flag(opt_out && setup.needs_engine()),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run(setup: Setup, case: Case) -> Result<(), Failed> {
    harness::proxmox::tls::install_default_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    rt.block_on(async {
        let servers = Servers::start(setup, case).await?;
        let checked = check(case, &servers).await;
        let logs = match &checked {
            Err(_) => servers.logs().await,
            Ok(()) => String::new(),
        };
        servers.stop().await;
        checked.map_err(|e| format!("{e}\n{logs}"))
    })
    .map_err(Failed::from)
}

/// The servers of one test: where the LAN and the public view answer.
struct Servers {
    lan: SocketAddr,
    public: SocketAddr,
    running: Running,
}

enum Running {
    Twin {
        views: twin::dns::DnsViews,
        /// Sockets that never answer, standing for a hung LAN server.
        _silent: Option<(std::net::UdpSocket, std::net::TcpListener)>,
    },
    Containers(Vec<Server>),
}

impl Servers {
    async fn start(setup: Setup, case: Case) -> Result<Servers, String> {
        let record = case.lan_record();
        let servers = match setup {
            Setup::Twin => {
                // The twin's views serve one name in both views; "no record" is a zone whose
                // only host is another name.
                let hostname = match record {
                    Some(_) => HOST.to_owned(),
                    None => format!("omni-old.{}", HOST.split_once('.').map_or(HOST, |p| p.1)),
                };
                let views = twin::dns::DnsViews::start(twin::dns::DnsViewsSpec {
                    hostname,
                    lan_bind: IpAddr::V4(Ipv4Addr::new(127, 0, 63, 1)),
                    public_bind: IpAddr::V4(Ipv4Addr::new(127, 0, 63, 2)),
                    port: 0,
                    lan_answer: IpAddr::V4(record.unwrap_or(LAN_IP)),
                    public_answer: IpAddr::V4(PUBLIC_IP),
                })
                .await
                .map_err(|e| format!("cannot start the twin's DNS views: {e}"))?;
                let (lan, silent) = if case == Case::LanDoesNotAnswer {
                    let ip = Ipv4Addr::new(127, 0, 63, 3);
                    let port = servers::free_port(ip)?;
                    let udp = std::net::UdpSocket::bind((ip, port)).map_err(|e| e.to_string())?;
                    let tcp = std::net::TcpListener::bind((ip, port)).map_err(|e| e.to_string())?;
                    (SocketAddr::new(IpAddr::V4(ip), port), Some((udp, tcp)))
                } else {
                    (views.lan_addr(), None)
                };
                Servers {
                    lan,
                    public: views.public_addr(),
                    running: Running::Twin {
                        views,
                        _silent: silent,
                    },
                }
            }
            Setup::Dnsmasq => {
                let docker = images::engine().await?;
                let dnsmasq = images::image(&docker, images::Software::Dnsmasq).await?;
                let bind9 = images::image(&docker, images::Software::Bind9).await?;
                let (gateway, lan) = servers::dnsmasq(&dnsmasq, record).await?;
                let (public_server, public) = match servers::bind9_public(&bind9, PUBLIC_IP).await {
                    Ok(p) => p,
                    Err(e) => {
                        gateway.remove().await;
                        return Err(e);
                    }
                };
                Servers {
                    lan,
                    public,
                    running: Running::Containers(vec![gateway, public_server]),
                }
            }
            Setup::Bind9Views => {
                let docker = images::engine().await?;
                let bind9 = images::image(&docker, images::Software::Bind9).await?;
                let (server, lan, public) =
                    servers::bind9_two_views(&docker, &bind9, record, PUBLIC_IP).await?;
                Servers {
                    lan,
                    public,
                    running: Running::Containers(vec![server]),
                }
            }
        };
        if case == Case::LanDoesNotAnswer
            && let Running::Containers(c) = &servers.running
        {
            // The first container serves the LAN view.
            if let Err(e) = c[0].pause().await {
                servers.stop().await;
                return Err(e);
            }
        }
        Ok(servers)
    }

    async fn logs(&self) -> String {
        let mut text = format!("LAN view {}, public view {}\n", self.lan, self.public);
        if let Running::Containers(c) = &self.running {
            for server in c {
                text.push_str(&server.logs().await);
            }
        }
        text
    }

    async fn stop(self) {
        match self.running {
            Running::Twin { views, .. } => views.shutdown().await,
            Running::Containers(c) => {
                for server in c {
                    server.remove().await;
                }
            }
        }
    }
}

/// Runs `preflight::dns` on a lab whose DNS is `servers` and compares with the case.
async fn check(case: Case, servers: &Servers) -> Result<(), String> {
    let twin = twin::Twin::start(twin::TwinOptions::default())
        .await
        .map_err(|e| format!("cannot start the twin: {e}"))?;
    let resolver = match case {
        Case::HostsUsePublicResolver => servers.public.ip(),
        _ => servers.lan.ip(),
    };
    twin.proxmox.set_hosts_dns(&[&resolver.to_string()]);
    let outcome = match lab_file(&twin, servers) {
        Ok(lab) => preflight_dns(&lab).await,
        Err(e) => Err(e),
    };
    twin.shutdown().await;
    let outcome = outcome?;
    eprintln!(
        "preflight::dns (LAN view {}, public view {}, hosts resolve through {resolver}): {}: {}",
        servers.lan, servers.public, outcome.verdict, outcome.message
    );
    expect(case, servers).judge(&outcome)
}

/// The twin's lab file with `[dns]` pointing at `servers`.
fn lab_file(twin: &twin::Twin, servers: &Servers) -> Result<std::path::PathBuf, String> {
    let text = std::fs::read_to_string(twin.lab_path()).map_err(|e| e.to_string())?;
    let mut lab: toml::Table = text.parse().map_err(|e| format!("twin lab file: {e}"))?;
    let dns = lab
        .get_mut("dns")
        .and_then(toml::Value::as_table_mut)
        .ok_or("the twin's lab file has no [dns] table")?;
    dns.insert(
        "lan_resolvers".into(),
        toml::Value::Array(vec![servers.lan.ip().to_string().into()]),
    );
    dns.insert("lan_view".into(), servers.lan.to_string().into());
    dns.insert("public_view".into(), servers.public.to_string().into());
    let path = twin.dir().join("lab-dns.toml");
    std::fs::write(&path, lab.to_string()).map_err(|e| e.to_string())?;
    Ok(path)
}

/// `preflight::dns` on the lab file at `path`, connected the way `clusterproof preflight`
/// connects it.
async fn preflight_dns(path: &std::path::Path) -> Result<Outcome, String> {
    let scenario = scenarios::by_id("preflight::dns").ok_or("no scenario preflight::dns")?;
    let spec = LabSpec::load(path, &Overrides::default()).map_err(|e| e.to_string())?;
    let lab = Lab::connect(
        spec,
        ConnectOptions {
            needs: scenario.needs().to_vec(),
            allow_changes: false,
            dry_run: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let cx = Context {
        lab: Arc::new(lab),
        events: EventBus::new().emitter(scenario.id()),
        cancel: Default::default(),
    };
    Ok(scenario.run(&cx).await)
}

/// What the check must conclude, and say, in each case — the same for every setup.
struct Expect {
    verdict: Verdict,
    /// Phrases the diagnosis (message, evidence, remediation) must contain.
    says: Vec<String>,
    /// Phrases the message must not contain: problems the case does not have.
    not_in_message: Vec<&'static str>,
}

fn expect(case: Case, s: &Servers) -> Expect {
    let (lan, public) = (s.lan, s.public);
    let lan_answers = format!("LAN view {lan} answers {HOST} → {LAN_IP}");
    let registering = "SideroLink stays at \"Registering\"".to_owned();
    match case {
        Case::Correct => Expect {
            verdict: Verdict::Pass,
            says: vec![
                format!("{HOST} → {LAN_IP} on the LAN view"),
                lan_answers,
                format!("public view {public} answers {HOST} → {PUBLIC_IP} (differs"),
            ],
            not_in_message: vec![],
        },
        Case::LanAnswersPublicIp => Expect {
            verdict: Verdict::Fail,
            says: vec![
                format!(
                    "the LAN view {lan} answers {HOST} with {PUBLIC_IP}, not Omni's LAN IP {LAN_IP}"
                ),
                format!("add a local DNS record on the LAN resolver: {HOST} → {LAN_IP}"),
                registering,
            ],
            not_in_message: vec!["instead of the LAN resolver"],
        },
        Case::LanAnswersNxdomain => Expect {
            verdict: Verdict::Fail,
            says: vec![
                "the LAN view cannot resolve the Omni name".into(),
                format!("{lan} has no A or AAAA record for {HOST} (NXDOMAIN"),
                format!("add a local DNS record on the LAN resolver: {HOST} → {LAN_IP}"),
                registering,
            ],
            not_in_message: vec!["instead of the LAN resolver"],
        },
        Case::LanDoesNotAnswer => Expect {
            verdict: Verdict::Fail,
            says: vec![
                format!(
                    "no answer from {lan} for {HOST} within {}s",
                    DNS_TIMEOUT.as_secs()
                ),
                registering,
            ],
            not_in_message: vec!["instead of the LAN resolver"],
        },
        Case::HostsUsePublicResolver => Expect {
            verdict: Verdict::Fail,
            says: vec![
                format!(
                    "uses {} instead of the LAN resolver {}",
                    public.ip(),
                    lan.ip()
                ),
                format!("set DNS server 1 to {}", lan.ip()),
                lan_answers,
                registering,
            ],
            not_in_message: vec!["LAN view"],
        },
    }
}

impl Expect {
    fn judge(&self, o: &Outcome) -> Result<(), String> {
        let diagnosis = format!(
            "{}\n{}\n{}",
            o.message,
            o.evidence.join("\n"),
            o.remediation.as_deref().unwrap_or("")
        );
        let mut wrong = Vec::new();
        if o.verdict != self.verdict {
            wrong.push(format!("verdict {} instead of {}", o.verdict, self.verdict));
        }
        for phrase in &self.says {
            if !diagnosis.contains(phrase.as_str()) {
                wrong.push(format!("the diagnosis does not say {phrase:?}"));
            }
        }
        for phrase in &self.not_in_message {
            if o.message.contains(phrase) {
                wrong.push(format!("the message wrongly says {phrase:?}"));
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(format!(
            "preflight::dns got it wrong: {}\n--- outcome:\n{diagnosis}",
            wrong.join("; ")
        ))
    }
}
