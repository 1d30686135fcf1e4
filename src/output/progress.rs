//! Apply's reporters: indicatif progress bars on a terminal; nothing otherwise (tracing logs
//! still go to stderr with -v).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{ActionResult, Reporter, Status};
use crate::plan::Action;

pub struct Quiet;

impl Reporter for Quiet {
    fn started(&self, a: &Action) {
        tracing::info!(id = %a.id, "started");
    }
    fn finished(&self, r: &ActionResult) {
        tracing::info!(id = %r.id, status = ?r.status, "finished");
    }
}

/// A bar for the whole apply and a spinner per running action, on stderr.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    running: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new(actions: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(actions as u64));
        total.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} actions")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bars {
            multi,
            total,
            running: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn started(&self, a: &Action) {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(a.id.clone());
        pb.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut r) = self.running.lock() {
            r.insert(a.id.clone(), pb);
        }
    }
    fn finished(&self, r: &ActionResult) {
        let pb = self.running.lock().ok().and_then(|mut m| m.remove(&r.id));
        let mark = match r.status {
            Status::Done => "done",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        let line = format!(
            "  {mark:<7} {} ({:.1}s){}",
            r.id,
            r.duration_ms as f64 / 1000.0,
            r.message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        let _ = self.multi.println(line);
        self.total.inc(1);
        if self.total.position() >= self.total.length().unwrap_or(0) {
            self.total.finish_and_clear();
        }
    }
}
