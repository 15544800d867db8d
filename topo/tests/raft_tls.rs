//! The topology service over TLS: a three-node Raft group whose nodes serve HTTPS and reach
//! each other over it, with and without mutual TLS, and clients that trust the right CA, the
//! wrong one, or speak clear text.

mod common;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use std::time::Duration;
use tessera_topo::tls::{ClientTls, NodeTls};
use tessera_topo::{Condition, HttpStore, Store, TopoError};

struct Authority {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = p.self_signed(&key).expect("ca").pem();
    Authority {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// A certificate for 127.0.0.1 (server and client use) signed by `ca`: (cert, key) PEM.
fn leaf(ca: &Authority, name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, &ca.issuer).expect("leaf");
    (cert.pem(), key.serialize_pem())
}

fn endpoints(c: &Cluster) -> Vec<String> {
    c.peers.values().map(ToString::to_string).collect()
}

/// What a put through `store` answers, in a few words.
async fn try_put(store: &HttpStore) -> Result<u64, TopoError> {
    store.put("/probe", "x", Condition::None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_between_peers_and_clients() {
    let ca = authority("topology CA");
    let (cert_pem, key_pem) = leaf(&ca, "topology node");
    let tls = NodeTls {
        cert_pem,
        key_pem,
        ca_pem: ca.pem.clone(),
        mutual: true,
    };
    // Peers elect a leader and replicate only by talking to each other over mutual TLS.
    let c = Cluster::start_full(3, 1000, None, Some(tls)).await;
    let eps = endpoints(&c);

    let (ccert, ckey) = leaf(&ca, "a router");
    let good = HttpStore::with_tls(
        &eps,
        None,
        Some(ClientTls {
            ca_pem: ca.pem.clone(),
            identity: Some((ccert, ckey)),
        }),
    )
    .expect("client");
    assert!(good.endpoints().iter().all(|e| e.starts_with("https://")));
    let rev = put_retry(&good, "/k", "over tls").await;
    for id in 1..=3 {
        c.wait_applied(id, 1).await;
    }
    let kv = good.get("/k").await.expect("get").expect("present");
    assert_eq!((kv.value.as_str(), kv.mod_revision), ("over tls", rev));
    // Every node applied it: replication ran over the peers' TLS.
    for id in 1..=3 {
        eventually("replicated to every node", || async {
            c.store(id).get("/k").await.ok().flatten().is_some()
        })
        .await;
    }

    // No client certificate: refused by every node.
    let anonymous = HttpStore::with_tls(
        &eps,
        None,
        Some(ClientTls {
            ca_pem: ca.pem.clone(),
            identity: None,
        }),
    )
    .expect("client");
    assert!(
        matches!(try_put(&anonymous).await, Err(TopoError::Unavailable(_))),
        "a client without a certificate is refused"
    );
    // A certificate from another CA: refused.
    let rogue = authority("another CA");
    let (rcert, rkey) = leaf(&rogue, "intruder");
    let intruder = HttpStore::with_tls(
        &eps,
        None,
        Some(ClientTls {
            ca_pem: ca.pem.clone(),
            identity: Some((rcert, rkey)),
        }),
    )
    .expect("client");
    assert!(matches!(
        try_put(&intruder).await,
        Err(TopoError::Unavailable(_))
    ));
    // Clear text: refused.
    let plain = HttpStore::new(&eps, None).expect("client");
    assert!(matches!(
        try_put(&plain).await,
        Err(TopoError::Unavailable(_))
    ));
    // Nothing those clients sent changed anything.
    assert!(good.get("/probe").await.expect("get").is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_verified_against_the_ca_with_a_token() {
    let ca = authority("topology CA");
    let (cert_pem, key_pem) = leaf(&ca, "topology node");
    let tls = NodeTls {
        cert_pem,
        key_pem,
        ca_pem: ca.pem.clone(),
        mutual: false,
    };
    let mut c = Cluster::start_full(3, 1000, Some("sekret"), Some(tls)).await;
    let eps = endpoints(&c);
    let trusting = |token: Option<&str>, ca_pem: &str| {
        HttpStore::with_tls(
            &eps,
            token.map(str::to_string),
            Some(ClientTls {
                ca_pem: ca_pem.to_string(),
                identity: None,
            }),
        )
        .expect("client")
    };
    let good = trusting(Some("sekret"), &ca.pem);
    put_retry(&good, "/a", "1").await;
    // The right CA without the token: 401, nothing written.
    assert!(matches!(
        trusting(None, &ca.pem)
            .put("/b", "1", Condition::None, None)
            .await,
        Err(TopoError::Invalid { .. } | TopoError::Unavailable(_))
    ));
    // Another CA: the node is not trusted, the token never sent.
    let rogue = authority("another CA");
    assert!(matches!(
        try_put(&trusting(Some("sekret"), &rogue.pem)).await,
        Err(TopoError::Unavailable(_))
    ));
    assert!(good.get("/b").await.expect("get").is_none());
    assert!(good.get("/probe").await.expect("get").is_none());

    // The leader goes; the others elect a new one over TLS and go on.
    let leader = c.wait_leader(None).await;
    c.kill(leader).await;
    c.wait_leader(Some(leader)).await;
    put_retry(&good, "/c", "after failover").await;
    c.restart(leader).await;
    eventually("the restarted node catches up over TLS", || async {
        c.store(leader).get("/c").await.ok().flatten().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    c.shutdown().await;
}
