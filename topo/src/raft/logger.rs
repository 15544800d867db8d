//! raft-rs logs through `slog`; this drain hands its records to `tracing`, so a Raft node's
//! log lines go wherever the binary's subscriber sends everything else.

use std::fmt::Write as _;

/// A `slog` drain that emits each record as a `tracing` event with target `raft`.
pub struct TracingDrain;

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(
            self.0,
            "{}{key}={val}",
            if self.0.is_empty() { "" } else { " " }
        );
        Ok(())
    }
}

fn render(record: &slog::Record<'_>, values: &slog::OwnedKVList) -> (String, String) {
    use slog::KV;
    let mut kv = KvText(String::new());
    let _ = record.kv().serialize(record, &mut kv);
    let _ = values.serialize(record, &mut kv);
    (record.msg().to_string(), kv.0)
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                if tracing::enabled!(target: "raft", tracing::Level::ERROR) {
                    let (msg, kv) = render(record, values);
                    tracing::error!(target: "raft", raft = %kv, "{msg}");
                }
            }
            slog::Level::Warning => {
                if tracing::enabled!(target: "raft", tracing::Level::WARN) {
                    let (msg, kv) = render(record, values);
                    tracing::warn!(target: "raft", raft = %kv, "{msg}");
                }
            }
            slog::Level::Info => {
                if tracing::enabled!(target: "raft", tracing::Level::INFO) {
                    let (msg, kv) = render(record, values);
                    tracing::info!(target: "raft", raft = %kv, "{msg}");
                }
            }
            slog::Level::Debug | slog::Level::Trace => {
                if tracing::enabled!(target: "raft", tracing::Level::DEBUG) {
                    let (msg, kv) = render(record, values);
                    tracing::debug!(target: "raft", raft = %kv, "{msg}");
                }
            }
        }
        Ok(())
    }
}

/// Returns a logger for node `id` that forwards to `tracing`.
pub fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}
