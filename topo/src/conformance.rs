//! One behaviour suite that every [`Store`] implementation runs in its tests.
//!
//! It panics on the first broken expectation, naming it. Keys live under a prefix unique to
//! each run, so the suite can run against a store that already holds data.

use crate::error::TopoError;
use crate::store::{Condition, Store, WatchEventKind};
use std::time::Duration;

/// Runs the whole suite against `store`.
///
/// # Panics
/// On any behaviour that differs from the [`Store`] contract.
pub async fn run(store: &dyn Store) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = format!("/conformance/{nonce}/");
    let k = |s: &str| format!("{p}{s}");

    // get of an absent key
    assert_eq!(store.get(&k("absent")).await.expect("get absent"), None);

    // put, get, revisions
    let start = store.revision().await.expect("revision");
    let r1 = store
        .put(&k("a"), "1", Condition::None, None)
        .await
        .expect("put a");
    assert!(r1 > start, "put must raise the revision");
    let kv = store.get(&k("a")).await.expect("get a").expect("a present");
    assert_eq!(kv.value, "1");
    assert_eq!(kv.mod_revision, r1);
    assert_eq!(kv.create_revision, r1);

    // watch from now
    let mut w = store.watch(&p, r1).await.expect("watch");

    // compare-and-set
    let r2 = store
        .put(&k("a"), "2", Condition::ModRevision(r1), None)
        .await
        .expect("cas with right revision");
    match store
        .put(&k("a"), "3", Condition::ModRevision(r1), None)
        .await
    {
        Err(TopoError::Conflict {
            expected, found, ..
        }) => {
            assert_eq!(expected, r1);
            assert_eq!(found, r2);
        }
        other => panic!("stale cas must conflict, got {other:?}"),
    }
    match store
        .put(&k("a"), "x", Condition::ModRevision(0), None)
        .await
    {
        Err(TopoError::Conflict { .. }) => {}
        other => panic!("create-if-absent on a present key must conflict, got {other:?}"),
    }
    let r3 = store
        .put(&k("b"), "b", Condition::ModRevision(0), None)
        .await
        .expect("create-if-absent");

    // list
    let (kvs, rev) = store.list(&p).await.expect("list");
    assert!(rev >= r3);
    let keys: Vec<_> = kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![k("a"), k("b")], "list is in key order");

    // delete
    let r4 = store
        .delete(&k("b"), Condition::None)
        .await
        .expect("delete")
        .expect("b was present");
    assert_eq!(
        store
            .delete(&k("b"), Condition::None)
            .await
            .expect("delete"),
        None
    );

    // the watch saw every change, in order
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.recv())
            .await
            .expect("watch event in time")
            .expect("watch open")
            .expect("watch event ok");
        seen.push((ev.kind, ev.kv.key.clone(), ev.revision));
    }
    assert_eq!(
        seen,
        vec![
            (WatchEventKind::Put, k("a"), r2),
            (WatchEventKind::Put, k("b"), r3),
            (WatchEventKind::Delete, k("b"), r4),
        ]
    );

    // a watch from an older revision replays history
    let mut w2 = store.watch(&p, r2).await.expect("watch from r2");
    let ev = tokio::time::timeout(Duration::from_secs(10), w2.recv())
        .await
        .expect("replayed in time")
        .expect("open")
        .expect("ok");
    assert_eq!(ev.revision, r3);

    // leases
    let lease = store.grant_lease(300).await.expect("grant");
    store
        .put(&k("leased"), "x", Condition::None, Some(lease))
        .await
        .expect("put with lease");
    store.keep_alive(lease).await.expect("keep alive");
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if store.get(&k("leased")).await.expect("get").is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "a key under a lapsed lease must vanish");
    assert!(matches!(
        store.keep_alive(lease).await,
        Err(TopoError::LeaseNotFound(_))
    ));
    match store.put(&k("l2"), "x", Condition::None, Some(lease)).await {
        Err(TopoError::LeaseNotFound(_)) => {}
        other => panic!("put with a lapsed lease must fail, got {other:?}"),
    }
    let lease2 = store.grant_lease(60_000).await.expect("grant");
    store
        .put(&k("l3"), "x", Condition::None, Some(lease2))
        .await
        .expect("put");
    store.revoke_lease(lease2).await.expect("revoke");
    assert_eq!(store.get(&k("l3")).await.expect("get"), None);
}
