//! Verify: chunked checksums of source and target, mismatches diffed row by row, repaired and
//! verified again.

use super::{now_ms, retriable, stamp, JobCell, Rebalancer};
use anyhow::{bail, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shardmove::{self as shardmove, ChunkResult, Copier};
use tessera_topo::{VerifyCounts, VerifyReport};
use tokio::sync::Mutex;

/// Smallest, first and largest verification chunk (rows). Chunks are sized by the time their
/// check takes (`chunk_target`), which also bounds how long a chunk that differs holds its
/// shared locks while it is checked again: the largest is there so that a fast server does
/// not grow them past what a lock should cover.
const VERIFY_CHUNK_MIN: usize = 100;
const VERIFY_CHUNK_FIRST: usize = 5_000;
const VERIFY_CHUNK_MAX: usize = 100_000;

pub(super) fn merge_counts(into: &mut VerifyCounts, c: &VerifyCounts) {
    into.rows += c.rows;
    into.chunks += c.chunks;
    into.matching += c.matching;
    into.mismatched += c.mismatched;
    into.missing_on_target += c.missing_on_target;
    into.extra_on_target += c.extra_on_target;
}

impl Rebalancer {
    pub(super) async fn verify_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let mut report = VerifyReport::default();
        let mut clean = true;
        let rate = self.opts.max_rows_per_sec;
        for (ls, from, to) in &job.moves {
            let schema = self.schema_of(&job, *ls).await?;
            let tables = self.tables(&job, *ls, from).await?;
            let mut src = self.conn(from).await?;
            let mut dst = self.conn(to).await?;
            src.query_drop("SET SESSION innodb_lock_wait_timeout = 5")
                .await?;
            for t in &tables {
                let key = format!("verify/{ls}/{}", t.name);
                let saved = cell.lock().await.job.checkpoints.get(&key).cloned();
                // A checkpoint is `done` or `<encoded key>|<counts json>`.
                let (mut lo, mut counts): (Option<Vec<Value>>, VerifyCounts) = match saved
                    .as_deref()
                {
                    Some("done") => {
                        if let Some(v) = cell.lock().await.job.verify.as_ref() {
                            if let Some(c) = v.tables.get(&format!("{ls}/{}", t.name)) {
                                merge_counts(report.tables.entry(t.name.clone()).or_default(), c);
                            }
                        }
                        continue;
                    }
                    Some(s) => {
                        let (k, c) = s.split_once('|').unwrap_or((s, "{}"));
                        (
                            Some(shardmove::decode_key(k)?),
                            serde_json::from_str(c).unwrap_or_default(),
                        )
                    }
                    None => (None, VerifyCounts::default()),
                };
                let mut last_save = Instant::now();
                // Chunks sized by the time their check takes (like the backfill's).
                let mut size = VERIFY_CHUNK_FIRST;
                // A single-column key gives the source's count, digest and chunk end in one
                // pass, and the source reads its next chunk while the target checks this one.
                // Other keys find the chunk's end first.
                let single = t.pk.len() == 1;
                let mut ahead: Option<shardmove::Digest> = None;
                loop {
                    let t0 = Instant::now();
                    let (hi, quick) = if single {
                        let cur = match ahead.take() {
                            Some(d) => d,
                            None => {
                                shardmove::next_digest(&mut src, &schema, t, lo.as_deref(), size)
                                    .await?
                            }
                        };
                        let (there, next) = tokio::join!(
                            shardmove::range_digest(
                                &mut dst,
                                &schema,
                                t,
                                lo.as_deref(),
                                cur.hi.as_deref()
                            ),
                            async {
                                match &cur.hi {
                                    Some(h) => Some(
                                        shardmove::next_digest(&mut src, &schema, t, Some(h), size)
                                            .await,
                                    ),
                                    None => None,
                                }
                            }
                        );
                        ahead = match next {
                            Some(Ok(d)) => Some(d),
                            Some(Err(e)) if !retriable(&e) => return Err(e),
                            _ => None,
                        };
                        let same = there? == (cur.rows, cur.digest);
                        (cur.hi, same.then_some(cur.rows))
                    } else {
                        (
                            shardmove::chunk_end(&mut src, &schema, t, lo.as_deref(), size).await?,
                            None,
                        )
                    };
                    let mut cp = Copier {
                        src: &mut src,
                        dst: &mut dst,
                        src_schema: &schema,
                        dst_schema: &schema,
                    };
                    let mut r = match quick {
                        Some(rows) => ChunkResult {
                            rows,
                            matching: rows,
                            clean_after_repair: true,
                            ..ChunkResult::default()
                        },
                        None => match cp.verify_chunk(t, lo.as_deref(), hi.as_deref()).await {
                            Ok(r) => r,
                            Err(e) if retriable(&e) => {
                                // Start this chunk again from its lower end.
                                ahead = None;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            Err(e) => return Err(e),
                        },
                    };
                    // A chunk still differing right after its repair may only be waiting for
                    // routers' dual-write copies in flight: verify (and repair) it again a few
                    // times before calling it unclean. Clean is only ever what matched.
                    for _ in 0..3 {
                        if r.clean_after_repair {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        match cp.verify_chunk(t, lo.as_deref(), hi.as_deref()).await {
                            Ok(again) => {
                                r.repaired += again.repaired;
                                r.clean_after_repair = again.clean_after_repair;
                            }
                            Err(e) if retriable(&e) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    counts.rows += r.rows;
                    counts.chunks += 1;
                    counts.matching += r.matching;
                    counts.mismatched += r.mismatched;
                    counts.missing_on_target += r.missing_on_target;
                    counts.extra_on_target += r.extra_on_target;
                    report.repaired += r.repaired;
                    if !r.clean_after_repair {
                        clean = false;
                    }
                    let took = t0.elapsed();
                    if r.matched() && took < self.opts.chunk_target / 2 {
                        size = (size * 2).min(VERIFY_CHUNK_MAX);
                    } else if took > self.opts.chunk_target * 2 {
                        size = (size / 2).max(VERIFY_CHUNK_MIN);
                    }
                    if let Some(rate) = rate {
                        let should = Duration::from_secs_f64(r.rows as f64 / rate.max(1) as f64);
                        if should > took {
                            tokio::time::sleep(should - took).await;
                        }
                    }
                    let done = hi.is_none();
                    lo = hi;
                    if done || last_save.elapsed() > Duration::from_millis(500) {
                        let mut c = cell.lock().await;
                        let v = if done {
                            "done".to_string()
                        } else {
                            format!(
                                "{}|{}",
                                lo.as_deref().map(shardmove::encode_key).unwrap_or_default(),
                                serde_json::to_string(&counts).unwrap_or_default()
                            )
                        };
                        c.job.checkpoints.insert(key.clone(), v);
                        let rep = c.job.verify.get_or_insert_with(VerifyReport::default);
                        rep.tables
                            .insert(format!("{ls}/{}", t.name), counts.clone());
                        self.save(&mut c).await?;
                        last_save = Instant::now();
                    }
                    if done {
                        break;
                    }
                }
                merge_counts(report.tables.entry(t.name.clone()).or_default(), &counts);
            }
        }
        report.at_ms = now_ms();
        report.clean = clean;
        let summary: Vec<String> = report
            .tables
            .iter()
            .map(|(t, c)| {
                format!(
                    "{t}: {} rows, {} matching, {} mismatched, {} missing on target, {} extra on target",
                    c.rows, c.matching, c.mismatched, c.missing_on_target, c.extra_on_target
                )
            })
            .collect();
        {
            let mut c = cell.lock().await;
            c.job.verify = Some(report.clone());
            c.job.checkpoints.retain(|k, _| !k.starts_with("verify/"));
            c.job.events.push(format!(
                "{} verified: {}; repaired {} rows; {}",
                stamp(),
                summary.join("; "),
                report.repaired,
                if clean { "clean" } else { "NOT clean" }
            ));
            self.save(&mut c).await?;
        }
        if !clean {
            // Start over: the next run verifies again from the beginning.
            bail!("verification did not converge (rows kept differing after repair); run verify again");
        }
        self.set_phase(cell, "verified").await
    }
}
