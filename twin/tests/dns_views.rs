//! The twin's split-horizon DNS, asked through the harness's DNS driver over real sockets.
//! Everything stays on loopback: the answers' addresses are data, never contacted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use harness::dns::{DnsClient, DnsError};
use twin::dns::{DnsViews, DnsViewsSpec};

const HOST: &str = "omni.spaceships.work";
const LAN_ANSWER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 10, 20));
const PUBLIC_ANSWER: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 64, 0, 20));
const TIMEOUT: Duration = Duration::from_secs(2);

/// Each test uses its own pair of loopback addresses so tests can run in parallel.
fn spec(third_octet: u8) -> DnsViewsSpec {
    DnsViewsSpec {
        hostname: HOST.to_owned(),
        lan_bind: IpAddr::V4(Ipv4Addr::new(127, 0, third_octet, 1)),
        public_bind: IpAddr::V4(Ipv4Addr::new(127, 0, third_octet, 2)),
        port: 0,
        lan_answer: LAN_ANSWER,
        public_answer: PUBLIC_ANSWER,
    }
}

#[tokio::test]
async fn each_view_gives_its_own_answer() {
    let views = DnsViews::start(spec(53)).await.unwrap();

    let lan = DnsClient::new(views.lan_addr(), TIMEOUT);
    let public = DnsClient::new(views.public_addr(), TIMEOUT);
    assert_eq!(lan.lookup(HOST).await.unwrap(), vec![LAN_ANSWER]);
    assert_eq!(public.lookup(HOST).await.unwrap(), vec![PUBLIC_ANSWER]);
    // A trailing dot and other letter case name the same host.
    assert_eq!(
        lan.lookup("OMNI.spaceships.work.").await.unwrap(),
        vec![LAN_ANSWER]
    );

    views.shutdown().await;
}

#[tokio::test]
async fn views_share_the_port_on_distinct_addresses() {
    let views = DnsViews::start(spec(54)).await.unwrap();
    assert_eq!(views.lan_addr().port(), views.public_addr().port());
    assert_ne!(views.lan_addr().port(), 0);
    assert_ne!(views.lan_addr().ip(), views.public_addr().ip());
    assert_eq!(views.lan_addr().ip(), spec(54).lan_bind);
    assert_eq!(views.public_addr().ip(), spec(54).public_bind);
    views.shutdown().await;
}

#[tokio::test]
async fn missing_name_in_the_zone_is_no_such_name() {
    let views = DnsViews::start(spec(55)).await.unwrap();
    for server in [views.lan_addr(), views.public_addr()] {
        let client = DnsClient::new(server, TIMEOUT);
        for name in ["nothing.spaceships.work", "spaceships.work"] {
            match client.lookup(name).await {
                Err(DnsError::NoSuchName {
                    name: asked,
                    server: asked_server,
                }) => {
                    assert_eq!(asked, name);
                    assert_eq!(asked_server, server);
                }
                other => panic!("{name} at {server}: expected NoSuchName, got {other:?}"),
            }
        }
    }
    views.shutdown().await;
}

#[tokio::test]
async fn lan_wrong_answer_fault_is_the_public_address_on_the_lan() {
    let views = DnsViews::start(DnsViewsSpec {
        lan_answer: PUBLIC_ANSWER,
        ..spec(56)
    })
    .await
    .unwrap();
    let lan = DnsClient::new(views.lan_addr(), TIMEOUT);
    assert_eq!(lan.lookup(HOST).await.unwrap(), vec![PUBLIC_ANSWER]);
    views.shutdown().await;
}

#[tokio::test]
async fn ipv6_answer_is_an_aaaa_record() {
    let v6: IpAddr = "fd00:10::20".parse().unwrap();
    let views = DnsViews::start(DnsViewsSpec {
        lan_answer: v6,
        ..spec(57)
    })
    .await
    .unwrap();
    let lan = DnsClient::new(views.lan_addr(), TIMEOUT);
    assert_eq!(lan.lookup(HOST).await.unwrap(), vec![v6]);
    views.shutdown().await;
}

#[tokio::test]
async fn fixed_port_is_used_and_a_taken_port_is_an_error() {
    let first = DnsViews::start(spec(58)).await.unwrap();
    let port = first.lan_addr().port();

    // The same addresses and port again: taken.
    let taken = DnsViews::start(DnsViewsSpec { port, ..spec(58) }).await;
    assert!(taken.is_err(), "binding a taken port succeeded");

    // The same port on other addresses: free.
    let second = DnsViews::start(DnsViewsSpec { port, ..spec(59) })
        .await
        .unwrap();
    assert_eq!(second.lan_addr().port(), port);
    let client = DnsClient::new(second.public_addr(), TIMEOUT);
    assert_eq!(client.lookup(HOST).await.unwrap(), vec![PUBLIC_ANSWER]);

    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn same_address_for_both_views_is_refused() {
    let mut same = spec(60);
    same.public_bind = same.lan_bind;
    let e = DnsViews::start(same).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn nobody_listening_is_an_error_within_the_timeout() {
    // A loopback port that was free a moment ago: nothing answers there.
    let silent: SocketAddr = {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let timeout = Duration::from_millis(300);
    let client = DnsClient::new(silent, timeout);

    let started = Instant::now();
    let result = client.lookup(HOST).await;
    let took = started.elapsed();

    match result {
        Err(e @ (DnsError::Timeout { .. } | DnsError::Failed { .. })) => {
            let message = e.to_string();
            assert!(message.contains(HOST), "{message}");
            assert!(message.contains(&silent.to_string()), "{message}");
        }
        other => panic!("expected Timeout or Failed, got {other:?}"),
    }
    // The timeout bounds the lookup; allow some slack for a loaded machine.
    assert!(took < timeout + Duration::from_millis(700), "took {took:?}");
}
