//! `preflight::dns` — VMs will find Omni on the LAN (split-horizon DNS).
//!
//! Proves (deployment plan): Constraint "Proxmox hosts use Unifi Gateway DNS — VMs inherit
//! DNS; must resolve omni.spaceships.work to LAN IP"; red flag "SideroLink stuck at
//! 'Registering' → DNS issue, check Proxmox host DNS settings" (the four-day lesson).
//!
//! Checks:
//! - every Proxmox host's resolvers (`GET /nodes/{node}/dns`) are the lab's LAN resolvers
//!   (`dns.lan_resolvers`), not public ones — VMs inherit them;
//! - the LAN view (`dns.lan_view`) answers the Omni name with Omni's LAN IP (`omni.lan_ip`);
//! - the public view (`dns.public_view`, when given) answers something else — informational.
//!
//! Only the lab's own nameservers are queried; a host's resolver is compared, never contacted.

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Dns;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::dns",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Constraint: Proxmox hosts use the LAN gateway DNS so VMs resolve the Omni name to its LAN IP (red flag: stuck at Registering)",
    needs: &[Need::Spec, Need::Proxmox, Need::Dns],
    after: &[],
};

impl Scenario for Dns {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

const REGISTERING: &str = "Symptom if deployed like this: VMs boot, but SideroLink stays at \"Registering\" — they inherit DNS from their Proxmox host, resolve the Omni name to a non-LAN address and never complete the join.";

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let lab = &cx.lab;
    let dns = &lab.spec.lab.dns;
    let omni_ip = lab.spec.lab.omni.lan_ip;
    let px = lab.proxmox()?;
    let lan = lab
        .dns_lan
        .as_ref()
        .ok_or_else(|| Outcome::skip("no DNS view configured"))?;
    let mut fails = Vec::new();
    let mut evidence = Vec::new();
    let mut fixes = Vec::new();

    let nodes = px
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let lan_list: Vec<String> = dns.lan_resolvers.iter().map(|i| i.to_string()).collect();
    for n in &nodes {
        if !n.online() {
            fails.push(format!(
                "host {} is {}: its DNS settings cannot be read",
                n.node,
                n.status.as_deref().unwrap_or("unknown")
            ));
            continue;
        }
        match px.node_dns(&n.node).await {
            Ok(d) => {
                let servers = d.servers();
                evidence.push(format!(
                    "host {} resolves through {}",
                    n.node,
                    if servers.is_empty() {
                        "nothing".into()
                    } else {
                        servers.join(", ")
                    }
                ));
                let foreign: Vec<&str> = servers
                    .iter()
                    .copied()
                    .filter(|s| !lan_list.iter().any(|l| l == s))
                    .collect();
                if servers.is_empty() {
                    fails.push(format!("host {} has no DNS server configured", n.node));
                } else if !foreign.is_empty() {
                    fails.push(format!(
                        "host {} uses {} instead of the LAN resolver {}",
                        n.node,
                        foreign.join(", "),
                        lan_list.join(", ")
                    ));
                    fixes.push(format!("on {}: Datacenter → {} → System → DNS: set DNS server 1 to {} and remove the others", n.node, n.node, lan_list[0]));
                }
            }
            Err(e) => fails.push(format!("cannot read the DNS settings of {}: {e}", n.node)),
        }
    }

    match lan.lookup(&dns.omni_hostname).await {
        Ok(ips) if ips.contains(&omni_ip) => evidence.push(format!(
            "LAN view {} answers {} → {}",
            lan.server(),
            dns.omni_hostname,
            join(&ips)
        )),
        Ok(ips) => {
            fails.push(format!(
                "the LAN view {} answers {} with {}, not Omni's LAN IP {omni_ip}",
                lan.server(),
                dns.omni_hostname,
                join(&ips)
            ));
            fixes.push(format!(
                "add a local DNS record on the LAN resolver: {} → {omni_ip}",
                dns.omni_hostname
            ));
        }
        Err(e) => {
            fails.push(format!("the LAN view cannot resolve the Omni name: {e}"));
            fixes.push(format!(
                "add a local DNS record on the LAN resolver: {} → {omni_ip}",
                dns.omni_hostname
            ));
        }
    }
    if let Some(public) = &lab.dns_public {
        match public.lookup(&dns.omni_hostname).await {
            Ok(ips) if ips.contains(&omni_ip) => evidence.push(format!("public view {} also answers the LAN IP {omni_ip}: split horizon is not in effect (informational)", public.server())),
            Ok(ips) => evidence.push(format!("public view {} answers {} → {} (differs from the LAN view, as split horizon intends)", public.server(), dns.omni_hostname, join(&ips))),
            Err(e) => evidence.push(format!("public view: {e} (informational)")),
        }
    }

    if fails.is_empty() {
        return Ok(Outcome {
            evidence,
            ..Outcome::pass(format!(
                "all {} hosts use the LAN resolver; {} → {omni_ip} on the LAN view",
                nodes.len(),
                dns.omni_hostname
            ))
        });
    }
    let mut o = Outcome::new(Verdict::Fail, fails.join("; "));
    o.evidence = evidence.into_iter().chain(fails.iter().cloned()).collect();
    o.evidence.push(REGISTERING.into());
    o.remediation = Some(format!("{}. {REGISTERING}", fixes.join("; ")));
    Ok(o)
}

fn join(ips: &[std::net::IpAddr]) -> String {
    if ips.is_empty() {
        "no address".into()
    } else {
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
