//! The audit trail of administrative actions: each command that changes the topology or
//! moves data records in the topology store who ran it, when, the command line (secrets
//! masked) and how it ended; `tessera audit` prints the trail.

use super::flags::TopoFlags;
use tessera_topo::AuditEntry;

/// Prints the last `limit` recorded actions.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// How many of the newest entries to print.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub topo: TopoFlags,
}

pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    let topo = a.topo.topo()?;
    for e in topo.audit_log(a.limit).await? {
        let at = chrono_like(e.at_ms);
        let detail = if e.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", e.detail)
        };
        println!("{at}  {:<24} {:<7} {}{detail}", e.who, e.phase, e.command);
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn chrono_like(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Who runs this process: `TESSERA_ACTOR`, else the user and host.
pub(crate) fn who() -> String {
    if let Ok(a) = std::env::var("TESSERA_ACTOR") {
        if !a.is_empty() {
            return a;
        }
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// The command line, with the values of password flags masked.
fn command_line() -> String {
    let mut out = Vec::new();
    let mut mask_next = false;
    for a in std::env::args().skip(1) {
        if mask_next {
            out.push("***".to_string());
            mask_next = false;
            continue;
        }
        if a == "--password" {
            mask_next = true;
            out.push(a);
        } else if a.starts_with("--password=") {
            out.push("--password=***".into());
        } else {
            out.push(a);
        }
    }
    out.join(" ")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `f`, an administrative action, recording it before and after in the topology store
/// that `topo` names. A trail that cannot be written stops the action before it starts (an
/// action nobody can account for is not taken); one that cannot be finished is warned about.
///
/// # Errors
/// The action's error, or the audit store's before it runs.
pub async fn audited<F>(topo: &TopoFlags, f: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let store = topo.topo()?;
    let mut e = AuditEntry {
        at_ms: now_ms(),
        who: who(),
        pid: std::process::id(),
        command: command_line(),
        phase: "started".into(),
        detail: String::new(),
    };
    store
        .audit(&e)
        .await
        .map_err(|err| anyhow::anyhow!("cannot record the action in the audit trail: {err}"))?;
    let r = f.await;
    e.at_ms = now_ms();
    match &r {
        Ok(()) => e.phase = "ok".into(),
        Err(err) => {
            e.phase = "failed".into();
            e.detail = format!("{err:#}");
        }
    }
    if let Err(err) = store.audit(&e).await {
        eprintln!("warning: the action's end was not recorded in the audit trail: {err}");
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::chrono_like(0), "1970-01-01 00:00:00");
        assert_eq!(super::chrono_like(1_796_601_600_000), "2026-12-07 00:00:00");
        assert_eq!(
            super::chrono_like(951_782_400_000 + 3_661_000),
            "2000-02-29 01:01:01"
        );
    }
}
