//! The API server's pod and service proxies to what the pods serve: agnhost netexec's
//! endpoints in its exact shapes, `/dial` across the emulated pod network (Services, cluster
//! DNS), and the failures of a real API server — a pod without an address, a Service without
//! endpoints, a dead node (dial timeouts), the `cross-node-drop` fault. Real kube-rs client
//! over HTTPS; raw responses (status, headers, body).

mod support;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, PostParams};
use support::*;
use twin::kube::KubeFault;

const NS: &str = "/api/v1/namespaces/default";

async fn service(c: &kube::Client, name: &str, app: &str) {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [
            {"name": "http", "port": 8080, "targetPort": "http"},
            {"name": "udp", "port": 8081, "protocol": "UDP"}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

async fn status_message(c: &kube::Client, path: &str) -> (u16, String) {
    let (code, body) = get(c, path).await;
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not a Status: {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["code"], code, "{body}");
    (code, v["message"].as_str().unwrap_or_default().to_string())
}

fn dial(pod: &str, host: &str, port: u16, proto: &str, tries: u32) -> String {
    format!(
        "{NS}/pods/{pod}:8080/proxy/dial?request=hostname&protocol={proto}&host={host}&port={port}&tries={tries}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netexec_answers_through_the_pod_and_service_proxies() {
    let t = start(0.01).await;
    let c = client(&t).await;
    join_ready(&t, &[("cp-1", true), ("w-1", false), ("w-2", false)]);
    netexec_pod(&c, "netexec-a", "w-1", "netexec").await;
    netexec_pod(&c, "netexec-b", "w-2", "netexec").await;
    service(&c, "netexec", "netexec").await;
    let pods = running(&c, "netexec", 2).await;
    let ip_b = pod_ip(
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some("netexec-b"))
            .unwrap(),
    );

    let (code, headers, body) = raw(
        &c,
        "GET",
        &format!("{NS}/pods/netexec-a:8080/proxy/hostname"),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "netexec-a"));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    // No port: the pod's first container port.
    assert_eq!(
        get(
            &c,
            &format!("{NS}/pods/netexec-a/proxy/echo?msg=hello%20world")
        )
        .await,
        (200, "hello world".into())
    );
    assert_eq!(
        get(
            &c,
            &format!("{NS}/pods/netexec-a/proxy/echo?msg=gone&code=404")
        )
        .await,
        (404, "gone".into())
    );
    assert_eq!(
        get(&c, &format!("{NS}/pods/netexec-a/proxy/healthz")).await,
        (200, String::new())
    );
    // The caller is the API server on the control plane's host network.
    let cp_ip = Api::<Node>::all(c.clone())
        .get("cp-1")
        .await
        .unwrap()
        .status
        .unwrap()
        .addresses
        .unwrap()[0]
        .address
        .clone();
    let (code, client_ip) = get(&c, &format!("{NS}/pods/netexec-a/proxy/clientip")).await;
    assert_eq!(code, 200);
    let (ip, port) = client_ip.rsplit_once(':').unwrap();
    assert_eq!(ip, cp_ip);
    assert!(port.parse::<u16>().is_ok(), "{client_ip}");
    let (code, now) = get(&c, &format!("{NS}/pods/netexec-a/proxy/anything/else")).await;
    assert!(code == 200 && now.starts_with("NOW: "), "{now}");

    // /dial from a to b, in netexec's JSON shape.
    assert_eq!(
        get(&c, &dial("netexec-a", &ip_b, 8080, "http", 1)).await,
        (200, r#"{"responses":["netexec-b"]}"#.into())
    );
    assert_eq!(
        get(&c, &dial("netexec-a", &ip_b, 8081, "udp", 2)).await,
        (200, r#"{"responses":["netexec-b","netexec-b"]}"#.into())
    );
    let (code, body) = get(&c, &dial("netexec-a", &ip_b, 9999, "http", 1)).await;
    assert_eq!(code, 200, "netexec answers 200 whatever the dial did");
    assert_eq!(
        body,
        format!(
            r#"{{"errors":["Get \"http://{ip_b}:9999/hostname\": dial tcp {ip_b}:9999: connect: connection refused"]}}"#
        )
    );
    let (code, body) = get(
        &c,
        &format!("{NS}/pods/netexec-a:8080/proxy/dial?host={ip_b}&port=8080"),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (400, "request parameter not specified. <nil>\n")
    );
    let (code, body) = get(
        &c,
        &format!(
            "{NS}/pods/netexec-a:8080/proxy/dial?request=hostname&host={ip_b}&port=8080&tries=x"
        ),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "tries parameter is invalid. strconv.Atoi: parsing \"x\": invalid syntax\n"
        )
    );

    // Through the Service's ClusterIP the load balancer spreads the tries over both backends.
    let cluster_ip = Api::<Service>::namespaced(c.clone(), "default")
        .get("netexec")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let (_, body) = get(&c, &dial("netexec-a", &cluster_ip, 8080, "http", 4)).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: std::collections::BTreeSet<&str> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["netexec-a", "netexec-b"].into_iter().collect(),
        "{body}"
    );
    // By name, once CoreDNS runs.
    eventually("CoreDNS ready", || async {
        let l = support::pods(&c, "kube-system", "k8s-app=kube-dns").await;
        (l.len() == 2 && l.iter().all(ready)).then_some(())
    })
    .await;
    let (code, body) = get(
        &c,
        &dial(
            "netexec-a",
            "netexec.default.svc.cluster.local",
            8080,
            "http",
            1,
        ),
    )
    .await;
    assert!(
        code == 200 && body.starts_with(r#"{"responses":["netexec-"#),
        "{body}"
    );
    let (code, body) = get(&c, &dial("netexec-a", "nope", 8080, "http", 1)).await;
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "host and/or port param are invalid. lookup nope on 10.96.0.10:53: no such host\n"
        )
    );

    // The service proxy picks a ready endpoint; by port number or name.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (code, body) = get(&c, &format!("{NS}/services/netexec:8080/proxy/hostname")).await;
        assert_eq!(code, 200);
        served.insert(body);
    }
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(
        get(&c, &format!("{NS}/services/netexec:http/proxy/echo?msg=x")).await,
        (200, "x".into())
    );
    let (code, msg) = status_message(&c, &format!("{NS}/services/netexec:9999/proxy/")).await;
    assert_eq!(
        (code, msg.as_str()),
        (503, "no service port 9999 found for service \"netexec\"")
    );
    assert_eq!(
        status_message(&c, &format!("{NS}/services/missing/proxy/"))
            .await
            .0,
        404
    );
    assert_eq!(
        status_message(&c, &format!("{NS}/pods/missing/proxy/"))
            .await
            .0,
        404
    );
    assert_eq!(
        status_message(&c, &format!("{NS}/pods/ftp:netexec-a:21/proxy/"))
            .await
            .0,
        400
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_fail_like_the_api_server_when_the_path_does_not_work() {
    let t = start(0.01).await;
    let c = client(&t).await;
    join_ready(&t, &[("cp-1", true), ("w-1", false), ("w-2", false)]);
    netexec_pod(&c, "netexec-a", "w-1", "netexec").await;
    netexec_pod(&c, "netexec-b", "w-2", "netexec").await;
    service(&c, "netexec", "netexec").await;
    let pods = running(&c, "netexec", 2).await;
    let ip_b = pod_ip(
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some("netexec-b"))
            .unwrap(),
    );

    // A pod that never got an address.
    netexec_pod(&c, "stuck", "no-such-node", "stuck").await;
    let (code, msg) = status_message(&c, &format!("{NS}/pods/stuck/proxy/hostname")).await;
    assert_eq!((code, msg.as_str()), (400, "address not allowed"));
    // A Service whose pods are not ready.
    service(&c, "stuck", "stuck").await;
    let (code, msg) = status_message(&c, &format!("{NS}/services/stuck:8080/proxy/")).await;
    assert_eq!(
        (code, msg.as_str()),
        (503, "no endpoints available for service \"stuck\"")
    );

    // w-2 dies: the API server's dial to b times out, and so does a's.
    t.set_kubelet_alive("w-2", false).unwrap();
    let (code, msg) = status_message(&c, &format!("{NS}/pods/netexec-b:8080/proxy/hostname")).await;
    assert_eq!(
        (code, msg),
        (
            503,
            format!("error trying to reach service: dial tcp {ip_b}:8080: i/o timeout")
        )
    );
    let (_, body) = get(&c, &dial("netexec-a", &ip_b, 8080, "http", 1)).await;
    assert_eq!(
        body,
        format!(
            r#"{{"errors":["Get \"http://{ip_b}:8080/hostname\": dial tcp {ip_b}:8080: i/o timeout (Client.Timeout exceeded while awaiting headers)"]}}"#
        )
    );
    // Once the node controller marks b not ready, the Service only sends to a.
    eventually("b out of the endpoints", || async {
        let p = Api::<Pod>::namespaced(c.clone(), "default")
            .get("netexec-b")
            .await
            .unwrap();
        (!ready(&p)).then_some(())
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            get(&c, &format!("{NS}/services/netexec:8080/proxy/hostname")).await,
            (200, "netexec-a".into())
        );
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_drop_times_out_pod_traffic_between_two_workers_only() {
    let t = start(0.01).await;
    let c = client(&t).await;
    t.set_fault(KubeFault::CrossNodeDrop, true);
    join_ready(
        &t,
        &[
            ("cp-1", true),
            ("w-1", false),
            ("w-2", false),
            ("w-3", false),
        ],
    );
    netexec_pod(&c, "a", "w-1", "netexec").await;
    netexec_pod(&c, "b", "w-2", "netexec").await;
    netexec_pod(&c, "c", "w-3", "netexec").await;
    let pods = running(&c, "netexec", 3).await;
    let ip = |n: &str| {
        pod_ip(
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(n))
                .unwrap(),
        )
    };
    assert_eq!(
        t.fault_targets().dropped_between,
        Some(("w-1".into(), "w-2".into()))
    );

    let (code, body) = get(&c, &dial("a", &ip("b"), 8080, "http", 2)).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("responses").is_none(), "{body}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 2);
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .ends_with("i/o timeout (Client.Timeout exceeded while awaiting headers)"),
        "{body}"
    );
    let (_, body) = get(&c, &dial("b", &ip("a"), 8081, "udp", 1)).await;
    assert!(body.contains("i/o timeout"), "{body}");
    // Every other path works: a and b to c, c to both, the API server to b.
    for (from, to) in [("a", "c"), ("b", "c"), ("c", "a"), ("c", "b")] {
        assert_eq!(
            get(&c, &dial(from, &ip(to), 8080, "http", 1)).await,
            (200, format!(r#"{{"responses":["{to}"]}}"#)),
            "{from} → {to}"
        );
    }
    assert_eq!(
        get(&c, &format!("{NS}/pods/b:8080/proxy/hostname")).await,
        (200, "b".into())
    );
    // Off again: a reaches b.
    t.set_fault(KubeFault::CrossNodeDrop, false);
    assert_eq!(
        get(&c, &dial("a", &ip("b"), 8080, "http", 1)).await,
        (200, r#"{"responses":["b"]}"#.into())
    );
    t.shutdown().await;
}
