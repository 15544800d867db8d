//! Three Raft nodes in this process on loopback ports: the store contract, leader loss,
//! restarts, a wiped node, watches across a leader change, leases and membership.
//!
//! The tests share two cores with whatever else runs, so they take turns.

mod common;

use common::{eventually, put_retry, Cluster};
use std::collections::BTreeMap;
use std::time::Duration;
use tessera_topo::raft::start_on;
use tessera_topo::{Condition, Store, TopoError, WatchEventKind};
use tokio::sync::Mutex;

static TURN: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_pass_conformance_on_a_follower_and_over_http() {
    let _turn = TURN.lock().await;
    let c = Cluster::start(3, 1000).await;
    let f = c.follower();
    tessera_topo::conformance::run(&*c.store(f)).await;
    tessera_topo::conformance::run(&c.client(Some(f))).await;
    // Every node applied the same history.
    let l = c.wait_leader(None).await;
    let commit = c.status(l)["commit"].as_u64().expect("commit");
    for id in 1..=3 {
        c.wait_applied(id, commit).await;
    }
    let rev = c.store(l).revision().await.expect("revision");
    for id in 1..=3 {
        let (_, r) = c.store(id).list_stale("/").await.expect("list");
        assert_eq!(r, rev, "node {id} has the same revision");
    }
    // Concurrent linearizable reads on a follower (they share read indexes) all see a
    // write acknowledged before they began.
    let wrote = put_retry(&*c.store(l), "/reads/k", "fresh").await;
    let follower = c.store(f);
    let reads: Vec<_> = (0..50)
        .map(|_| {
            let s = follower.clone();
            tokio::spawn(async move { s.get("/reads/k").await })
        })
        .collect();
    for r in reads {
        let kv = r.await.expect("task").expect("read").expect("present");
        assert_eq!(kv.mod_revision, wrote);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let _turn = TURN.lock().await;
    let mut c = Cluster::start(3, 1000).await;
    let old = c.wait_leader(None).await;
    let old_term = c.status(old)["term"].as_u64().expect("term");
    let client = c.client(Some(old));
    let mut acked = BTreeMap::new();
    for i in 0..20 {
        let k = format!("/ack/{i:03}");
        acked.insert(k.clone(), put_retry(&client, &k, &i.to_string()).await);
    }
    // Writes are in flight while the leader goes away.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            for i in 20..60 {
                let k = format!("/ack/{i:03}");
                acked.insert(k.clone(), put_retry(&client, &k, &i.to_string()).await);
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.kill(old).await;
    let new = c.wait_leader(Some(old)).await;
    assert_ne!(new, old);
    assert!(c.status(new)["term"].as_u64().expect("term") > old_term);
    acked.extend(writer.await.expect("writer"));

    let survivor = c.store(c.follower());
    let (kvs, _) = survivor.list("/ack/").await.expect("list");
    let found: BTreeMap<String, u64> = kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    for (k, rev) in &acked {
        assert_eq!(found.get(k), Some(rev), "acknowledged write {k} at {rev}");
    }
    // The old leader comes back as a follower and catches up.
    c.restart(old).await;
    let commit = c.status(new)["commit"].as_u64().expect("commit");
    c.wait_applied(old, commit).await;
    let (kvs, _) = c.store(old).list_stale("/ack/").await.expect("list");
    assert_eq!(kvs.len(), acked.len());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_and_a_wiped_one_rejoins_by_snapshot() {
    let _turn = TURN.lock().await;
    let mut c = Cluster::start(3, 10).await;
    let l = c.wait_leader(None).await;
    let f = c.follower();

    // Restart from the data dir.
    c.kill(f).await;
    for i in 0..15 {
        put_retry(&*c.store(l), &format!("/r/{i}"), "v").await;
    }
    c.restart(f).await;
    let commit = c.status(l)["commit"].as_u64().expect("commit");
    c.wait_applied(f, commit).await;
    let (kvs, _) = c.store(f).list_stale("/r/").await.expect("list");
    assert_eq!(kvs.len(), 15);

    // A wiped data dir: the leader has compacted past anything the node could replay, so it
    // must install a snapshot.
    c.kill(f).await;
    std::fs::remove_dir_all(c.dir(f)).expect("wipe");
    for i in 0..25 {
        put_retry(&*c.store(l), &format!("/w/{i}"), "v").await;
    }
    let leader_snap = c.status(l)["snapshot_index"].as_u64().expect("snap");
    assert!(leader_snap > 1, "the leader compacted its log");
    c.restart(f).await;
    let commit = c.status(l)["commit"].as_u64().expect("commit");
    c.wait_applied(f, commit).await;
    let st = c.status(f);
    assert!(
        st["snapshot_index"].as_u64().unwrap_or(0) >= leader_snap,
        "the wiped node installed a snapshot: {st}"
    );
    let (kvs, _) = c.store(f).list_stale("/").await.expect("list");
    assert_eq!(kvs.len(), 40, "the wiped node has every key back");
    // It serves linearizable reads and writes like any member.
    put_retry(&*c.store(f), "/w/after", "v").await;
    assert!(c.store(f).get("/w/after").await.expect("get").is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_every_change_in_order_across_a_leader_change() {
    let _turn = TURN.lock().await;
    let mut c = Cluster::start(3, 1000).await;
    let old = c.wait_leader(None).await;
    // The watch polls the leader first, and must fail over when it dies.
    let client = c.client(Some(old));
    let start = client.revision().await.expect("revision");
    let mut w = client.watch("/watch/", start).await.expect("watch");
    let writer = c.client(None);
    let mut want = Vec::new();
    for i in 0..10 {
        want.push(put_retry(&writer, &format!("/watch/{i:02}"), "a").await);
    }
    c.kill(old).await;
    c.wait_leader(Some(old)).await;
    for i in 10..20 {
        want.push(put_retry(&writer, &format!("/watch/{i:02}"), "b").await);
    }
    let del = writer
        .delete("/watch/00", Condition::None)
        .await
        .expect("delete")
        .expect("present");
    want.push(del);
    let mut got = Vec::new();
    while got.len() < want.len() {
        let ev = tokio::time::timeout(Duration::from_secs(15), w.recv())
            .await
            .expect("event in time")
            .expect("watch open")
            .expect("event");
        got.push((ev.revision, ev.kind, ev.kv.key));
    }
    let revs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(revs, want, "every change, in order, once");
    assert_eq!(got[20].1, WatchEventKind::Delete);
    assert_eq!(got[5].2, "/watch/05");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_and_a_new_leader_gives_them_a_fresh_ttl() {
    let _turn = TURN.lock().await;
    let mut c = Cluster::start(3, 1000).await;
    let old = c.wait_leader(None).await;
    let client = c.client(None);
    let a = client.grant_lease(400).await.expect("grant");
    let b = client.grant_lease(2_000).await.expect("grant");
    assert_ne!(a, b, "lease ids are unique");
    client
        .put("/lease/a", "x", Condition::None, Some(a))
        .await
        .expect("put");
    client
        .put("/lease/b", "x", Condition::None, Some(b))
        .await
        .expect("put");
    eventually("lease a expires", || async {
        client.get("/lease/a").await.ok().flatten().is_none()
    })
    .await;
    assert!(matches!(
        client.keep_alive(a).await,
        Err(TopoError::LeaseNotFound(_))
    ));
    // The new leader cannot know when b was last renewed, so b lives a full TTL from the
    // election, and then lapses.
    c.kill(old).await;
    let new = c.wait_leader(Some(old)).await;
    let elected = std::time::Instant::now();
    assert!(
        client.get("/lease/b").await.expect("get").is_some(),
        "b outlives the leader change"
    );
    eventually("lease b expires", || async {
        client.get("/lease/b").await.ok().flatten().is_none()
    })
    .await;
    assert!(
        elected.elapsed() >= Duration::from_millis(1_500),
        "b had a fresh TTL from the election"
    );
    // A lease granted now, by the new leader, still gets a fresh id.
    let d = c.store(new).grant_lease(1_000).await.expect("grant");
    assert!(d != a && d != b);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_over_http() {
    let _turn = TURN.lock().await;
    let mut c = Cluster::start(3, 20).await;
    for i in 0..30 {
        put_retry(&*c.store(1), &format!("/m/{i}"), "v").await;
    }
    // Node 4: announced to the cluster first, then started with every member as its peers.
    let l4 = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr4 = l4.local_addr().expect("addr");
    let http = tessera_topo::tls::http_client(None)
        .expect("client")
        .build()
        .expect("client");
    let f = c.follower();
    let resp = http
        .post(format!("http://{}/v1/members", c.peers[&f]))
        .json(&serde_json::json!({ "id": 4, "addr": addr4.to_string() }))
        .send()
        .await
        .expect("post member");
    assert!(resp.status().is_success(), "add: {}", resp.status());
    c.peers.insert(4, addr4);
    let h4 = start_on(c.config(4), l4).await.expect("start node 4");
    c.nodes.insert(4, h4);
    let l = c.wait_leader(None).await;
    let commit = c.status(l)["commit"].as_u64().expect("commit");
    c.wait_applied(4, commit).await;
    let (kvs, _) = c.store(4).list_stale("/m/").await.expect("list");
    assert_eq!(kvs.len(), 30, "node 4 caught up");
    let members: serde_json::Value = http
        .get(format!("http://{}/v1/members", c.peers[&4]))
        .send()
        .await
        .expect("get members")
        .json()
        .await
        .expect("json");
    let voters: Vec<u64> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4]);

    // Remove a follower other than node 4; the rest carry on.
    let gone = *[1u64, 2, 3]
        .iter()
        .find(|id| Some(**id) != c.leader())
        .expect("a follower");
    let resp = http
        .delete(format!("http://{}/v1/members/{gone}", c.peers[&l]))
        .send()
        .await
        .expect("delete member");
    assert!(resp.status().is_success(), "remove: {}", resp.status());
    c.kill(gone).await;
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        eventually("removal applied everywhere", || {
            let st = c.status(id);
            async move { st["voters"].as_array().map(|v| v.len()) == Some(3) }
        })
        .await;
    }
    put_retry(&*c.store(4), "/m/after", "v").await;
    assert!(c.store(4).get("/m/after").await.expect("get").is_some());
    // The leader itself: it hands over first and answers 503, and the member asked next
    // removes it.
    let leader = c.wait_leader(None).await;
    let mut removed = false;
    for _ in 0..100 {
        for (id, addr) in &c.peers {
            if *id == gone {
                continue;
            }
            let resp = http
                .delete(format!("http://{addr}/v1/members/{leader}"))
                .send()
                .await
                .expect("delete member");
            // 404: an earlier attempt that answered 503 went through after all.
            if resp.status().is_success() || resp.status().as_u16() == 404 {
                removed = true;
                break;
            }
            assert_eq!(resp.status().as_u16(), 503, "only 'retry' is expected");
        }
        if removed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed, "the leader was removed");
    // Even before it is stopped, the removed leader gives way.
    eventually("another node leads", || {
        let st: Vec<_> = c.nodes.keys().map(|id| c.status(*id)).collect();
        async move {
            st.iter()
                .any(|s| s["role"] == "leader" && s["id"].as_u64() != Some(leader))
        }
    })
    .await;
    c.kill(leader).await;
    c.wait_leader(Some(leader)).await;
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        eventually("the leader's removal applied everywhere", || {
            let st = c.status(id);
            async move { st["voters"].as_array().map(|v| v.len()) == Some(2) }
        })
        .await;
    }
    put_retry(&*c.store(4), "/m/after-leader", "v").await;
    // Removing an unknown member is a clear error.
    let resp = http
        .delete(format!("http://{}/v1/members/99", c.peers[&4]))
        .send()
        .await
        .expect("delete member");
    assert_eq!(resp.status().as_u16(), 404);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_clients_and_peers_alike() {
    let _turn = TURN.lock().await;
    let c = Cluster::start_with(3, 1000, Some("sekret")).await;
    tessera_topo::conformance::run(&c.client(None)).await;
    let http = tessera_topo::tls::http_client(None)
        .expect("client")
        .build()
        .expect("client");
    let addr = c.peers[&c.follower()];
    let resp = http
        .post(format!("http://{addr}/raft/message"))
        .body(Vec::<u8>::new())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 401, "peer route needs the token");
    let resp = http
        .get(format!("http://{addr}/v1/members"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401, "membership needs the token");
    let resp = http
        .post(format!("http://{addr}/raft/message"))
        .bearer_auth("sekret")
        .body(vec![9u8, 0, 0, 0, 1])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 400, "a malformed batch is refused");
    c.shutdown().await;
}
