//! The deployment's topology without containers (the nodes get the flags
//! `deploy/compose.yaml` gives them): three `nats-server` nodes in one
//! JetStream cluster, the stream kept on all three (`stream_replicas = 3`),
//! two relays. One node lost: webhooks are still stored (a quorum of two)
//! and pushed, a desktop that reconnects from its last id misses nothing
//! and sees nothing twice, and a retry through the other relay is stored
//! once.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use support::{
    fake_fullscript, free_port, fullscript_at, next, subscribe, try_webhook, wait_until, Nats,
};

const SECRET: &str = "whsec_cluster";

/// Deliver as Fullscript does: again until the relay acknowledges (a
/// write during the cluster's leader election is refused, and retried).
async fn deliver(relay: &str, id: &str, order: &str) {
    wait_until(&format!("{id} acknowledged"), async || {
        try_webhook(relay, SECRET, id, "clinic-a", order).await == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_a_node_and_keeps_storing_and_pushing_each_event_once() {
    let stores: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Option<Nats>> = (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|j| *j != i).map(|j| routes[j]).collect();
            Some(Nats::start_in_cluster(
                stores[i].path(),
                ports[i],
                &format!("nats-{i}"),
                routes[i],
                &others,
            ))
        })
        .collect();
    let urls = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let fullscript = fake_fullscript(Arc::default()).await;
    let extra = format!("{}stream_replicas = 3\n", fullscript_at(&fullscript));
    let a = support::start_relay(SECRET, "c", &urls, &extra).await;
    let b = support::start_relay(SECRET, "c", &urls, &extra).await;

    // The first write waits for the cluster to elect its leaders.
    deliver(&a, "e0", "order-0").await;
    let servers: Vec<async_nats::ServerAddr> = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}").parse().unwrap())
        .collect();
    let client = async_nats::connect(servers).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(fsn_relay::log::STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    let replicas = info.cluster.as_ref().map_or(0, |c| c.replicas.len());
    assert_eq!(replicas, 2, "a leader and two replicas: {:?}", info.cluster);

    // A desktop on B from the stream's start; then a node is lost.
    let mut desktop = subscribe(&b, "token-a", Some(0)).await.unwrap();
    let (mut last, first) = next(&mut desktop).await.expect("e0 pushed");
    assert_eq!(first["lab_order_id"], "order-0");
    let first_id = last;
    nodes[0] = None;
    for i in 1..=5 {
        let relay = if i % 2 == 0 { &a } else { &b };
        deliver(relay, &format!("e{i}"), &format!("order-{i}")).await;
    }
    // Fullscript retrying e3 through the other relay: stored once.
    deliver(&a, "e3", "order-3").await;

    // The desktop reconnects from its last id whenever its stream ends
    // (the agent does the same), until it has everything.
    let mut seen = vec!["order-0".to_string()];
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while seen.len() < 6 {
        assert!(std::time::Instant::now() < give_up, "only {seen:?} pushed");
        match next(&mut desktop).await {
            Some((id, data)) => {
                assert!(id > last, "pushed in stream order, never again");
                last = id;
                seen.push(data["lab_order_id"].as_str().unwrap_or_default().into());
            }
            None => {
                desktop = loop {
                    if let Ok(d) = subscribe(&b, "token-a", Some(last)).await {
                        break d;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                };
            }
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "each once: {seen:?}");
    assert_eq!(
        unique,
        (0..=5)
            .map(|i| format!("order-{i}"))
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(stream.info().await.unwrap().state.messages, 6, "e3 once");

    // An id means the same through either relay and after the leader
    // changed (it is offset by the stream's creation, which every replica
    // reports alike): resuming after e0 through A gives e1, not the stream
    // whole.
    // (A may still be finding a live node: it answers 503 until then, and
    // a desktop retries, as here.)
    let mut again = loop {
        assert!(
            std::time::Instant::now() < give_up,
            "A never served the stream again"
        );
        if let Ok(d) = subscribe(&a, "token-a", Some(first_id)).await {
            break d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (_, data) = next(&mut again).await.expect("pushed after e0");
    assert_eq!(data["lab_order_id"], "order-1");
    // Only the desktop's first subscription (from 0, an id no stream gave)
    // was sent a stream whole; none of its resumes.
    for (relay, whole) in [(&a, 0), (&b, 1)] {
        let counted = support::metric(relay, "fsn_relay_resumes_from_another_stream_total ").await;
        assert_eq!(counted, whole, "ids taken for another stream's");
    }
}
