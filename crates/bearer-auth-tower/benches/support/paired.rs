//! Paired overheads for the adapter benches, shared by
//! `crates/bearer-auth-tower/benches/router.rs` and
//! `crates/bearer-auth-actix/benches/app.rs` (included with `#[path]`).

use std::{
    cell::RefCell,
    path::{Path, PathBuf},
    time::Duration,
};

/// Samples criterion takes of each bench (its default, set explicitly: the paired
/// overhead is the median over exactly these).
pub(crate) const SAMPLES: usize = 100;

/// For each call criterion makes: the time through the setup, the time through the bare
/// service beside it, and the number of requests each got.
pub(crate) type Records = RefCell<Vec<(Duration, Duration, u64)>>;

/// The paired overhead of a setup, from the last [`SAMPLES`] records: the median of
/// (time per request through the setup − time per request through bare beside it), in
/// nanoseconds, and the median of that difference relative to the bare time. The
/// machine's speed drifts from one bench to the next and scales both times alike; the
/// relative figure cancels that scale, so it is the one to compare setups by.
pub(crate) fn paired_overhead(records: &Records) -> Option<(f64, f64)> {
    let records = records.borrow();
    let last = &records[records.len().saturating_sub(SAMPLES)..];
    let absolute = median(last.iter().map(|(with, without, iters)| {
        (with.as_secs_f64() - without.as_secs_f64()) * 1e9 / *iters as f64
    }))?;
    let relative = median(
        last.iter()
            .map(|(with, without, _)| with.as_secs_f64() / without.as_secs_f64() - 1.0),
    )?;
    Some((absolute, relative))
}

/// The median; `None` for no value (a bench filtered out of this run).
pub(crate) fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n.is_multiple_of(2) => Some((values[mid - 1] + values[mid]) / 2.0),
        _ => Some(values[mid]),
    }
}

/// Prints the paired overhead and leaves it beside criterion's own estimates, as
/// `<criterion dir>/<id>/paired.json`, for `scripts/bench-table.py`.
pub(crate) fn report_paired(id: &str, overhead: Option<(f64, f64)>) {
    let Some((absolute, relative)) = overhead else {
        return;
    };
    println!(
        "{id}: paired overhead over bare (medians of {SAMPLES} samples): {absolute:.1} ns, {:.1}% of bare",
        relative * 100.0
    );
    let dir = criterion_dir().join(id);
    if std::fs::create_dir_all(&dir).is_ok() {
        let json = format!(
            "{{\"paired_overhead_ns\":{absolute},\"paired_overhead_relative\":{relative},\"samples\":{SAMPLES}}}\n"
        );
        let _ = std::fs::write(dir.join("paired.json"), json);
    }
}

/// Where criterion writes its estimates: `CRITERION_HOME`, else `criterion` in the target
/// directory.
pub(crate) fn criterion_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"))
}
