//! One Raft node: the store contract, restarts from the data dir, and damaged logs.

mod common;

use common::{put_retry, Cluster};
use std::io::Write;
use tessera_topo::raft::storage::LOG_FILE;
use tessera_topo::raft::{serve_single, start};
use tessera_topo::{Condition, HttpStore, Store, TopoError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_passes_conformance_directly_and_over_http() {
    let c = Cluster::start(1, 10).await;
    let store = c.store(1);
    tessera_topo::conformance::run(&*store).await;
    tessera_topo::conformance::run(&c.client(None)).await;
    let st = c.status(1);
    assert_eq!(st["role"], "leader");
    assert!(
        st["snapshot_index"].as_u64().unwrap_or(0) > 0,
        "10 entries make a snapshot: {st}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_stale_reads_answer_locally() {
    let mut c = Cluster::start(1, 7).await;
    let store = c.store(1);
    for i in 0..20 {
        put_retry(&*store, &format!("/k/{i:02}"), &format!("v{i}")).await;
    }
    let lease = store.grant_lease(60_000).await.expect("grant");
    store
        .put("/leased", "x", Condition::None, Some(lease))
        .await
        .expect("put with lease");
    let rev = store.revision().await.expect("revision");
    c.kill(1).await;
    assert!(matches!(store.get("/k/00").await, Err(TopoError::Closed)));

    c.restart(1).await;
    let store = c.store(1);
    let (kvs, r) = store.list_stale("/k/").await.expect("stale list");
    assert_eq!(kvs.len(), 20, "every write survives the restart");
    assert_eq!(r, rev);
    let kv = store.get("/k/07").await.expect("get").expect("present");
    assert_eq!(kv.value, "v7");
    assert!(store.get("/leased").await.expect("get").is_some());
    store
        .keep_alive(lease)
        .await
        .expect("the lease survives too");
    // A new lease id never collides with an old one.
    let lease2 = store.grant_lease(1000).await.expect("grant");
    assert_ne!(lease, lease2);
    // Over HTTP, stale=true reads too.
    let client = c.client(None);
    let kv = client.get_stale("/k/03").await.expect("stale get");
    assert_eq!(kv.map(|kv| kv.value), Some("v3".to_string()));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_single_embeds_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = serve_single(dir.path(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let store = h.store();
    put_retry(&*store, "/embedded", "yes").await;
    let client = HttpStore::new(&[h.local_addr().to_string()], None).expect("client");
    let kv = client
        .get("/embedded")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(kv.value, "yes");
    let status: serde_json::Value = tessera_topo::tls::http_client(None)
        .expect("client")
        .build()
        .expect("client")
        .get(format!("http://{}/v1/status", h.local_addr()))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["role"], "leader");
    assert_eq!(status["voters"], serde_json::json!([1]));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_is_truncated_and_middle_corruption_is_refused() {
    let mut c = Cluster::start(1, 1_000_000).await;
    let store = c.store(1);
    for i in 0..10 {
        put_retry(&*store, &format!("/t/{i}"), "v").await;
    }
    c.kill(1).await;
    let log = c.dir(1).join(LOG_FILE);

    // A crash in the middle of an append: half a record at the end.
    let len = std::fs::metadata(&log).expect("meta").len();
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9])
            .expect("append torn record");
    }
    c.restart(1).await;
    let store = c.store(1);
    let (kvs, _) = store.list("/t/").await.expect("list");
    assert_eq!(kvs.len(), 10, "nothing acknowledged is lost to a torn tail");
    put_retry(&*store, "/t/after", "v").await;
    c.kill(1).await;
    assert!(
        std::fs::metadata(&log).expect("meta").len() > len,
        "appends continue after the truncated tail"
    );

    // A flipped byte early in the file, with good records after it, is corruption.
    let mut bytes = std::fs::read(&log).expect("read");
    bytes[8 + 9 + 2] ^= 0x55;
    std::fs::write(&log, &bytes).expect("write");
    match start(c.config(1)).await {
        Err(TopoError::Corrupt { key, message }) => {
            assert!(key.contains(LOG_FILE), "names the file: {key}");
            assert!(key.contains("offset 8"), "names the offset: {key}");
            assert!(message.contains("checksum"), "{message}");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("a corrupt log must not start"),
    }
}
