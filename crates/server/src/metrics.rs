//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4): request latency by route, method
//! and status; items accepted and quarantined; score changes; open streams; the active model, how often
//! the served model switched, and the review queue's waiting items.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    /// Counts per bucket (not cumulative), then the overflow.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    /// By (route, method, status).
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    pub items_accepted: AtomicU64,
    pub items_quarantined: AtomicU64,
    pub score_changes: AtomicU64,
    pub open_streams: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_refused: AtomicU64,
    pub webhook_retries: AtomicU64,
    pub model_switches: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        h.counts[bucket] += 1;
        h.sum += seconds;
    }

    /// The exposition text; `model_id` is the active model's, if any.
    pub fn render(
        &self,
        model_id: Option<&str>,
        ready: bool,
        backlogs: &[(String, u64)],
        review_waiting: u64,
        monitoring: Option<&winsignal_workspace::alerts::Latest>,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP winsignal_http_request_duration_seconds Time to answer a request, by route, method and status.\n");
        out.push_str("# TYPE winsignal_http_request_duration_seconds histogram\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((route, method, status), h) in requests.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                escape(route),
                escape(method)
            );
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(
                    out,
                    "winsignal_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            cumulative += h.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "winsignal_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "winsignal_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "winsignal_http_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }
        drop(requests);
        let counters = [
            (
                "winsignal_items_accepted_total",
                "Items (events, records, Segment messages) accepted into the store.",
                &self.items_accepted,
            ),
            (
                "winsignal_items_quarantined_total",
                "Items quarantined with their reasons.",
                &self.items_quarantined,
            ),
            (
                "winsignal_score_changes_total",
                "Changes of an open deal's score made by events.",
                &self.score_changes,
            ),
            (
                "winsignal_webhook_deliveries_total",
                "Webhook messages a receiver took (2xx).",
                &self.webhook_delivered,
            ),
            (
                "winsignal_webhook_refused_total",
                "Webhook messages a receiver refused for good (a 4xx other than 408 and 429).",
                &self.webhook_refused,
            ),
            (
                "winsignal_webhook_retries_total",
                "Webhook attempts that failed and were retried.",
                &self.webhook_retries,
            ),
            (
                "winsignal_model_switches_total",
                "Times the served model changed without a restart (activation, rollback).",
                &self.model_switches,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP winsignal_open_streams Event streams open (GET /v1/stream).\n# TYPE winsignal_open_streams gauge\nwinsignal_open_streams {}",
            self.open_streams.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP winsignal_outbox_backlog Score changes recorded that a webhook has not been through yet.\n# TYPE winsignal_outbox_backlog gauge"
        );
        for (name, backlog) in backlogs {
            let _ = writeln!(
                out,
                "winsignal_outbox_backlog{{webhook=\"{}\"}} {backlog}",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP winsignal_review_waiting Items of the review queue waiting for a decision.\n# TYPE winsignal_review_waiting gauge\nwinsignal_review_waiting {review_waiting}"
        );
        let _ = writeln!(
            out,
            "# HELP winsignal_ready Whether the workspace is loaded.\n# TYPE winsignal_ready gauge\nwinsignal_ready {}",
            u8::from(ready)
        );
        let _ = writeln!(
            out,
            "# HELP winsignal_active_model The model scores are from (1 for its id).\n# TYPE winsignal_active_model gauge"
        );
        if let Some(id) = model_id {
            let _ = writeln!(
                out,
                "winsignal_active_model{{model_id=\"{}\"}} 1",
                escape(id)
            );
        }
        if let Some(m) = monitoring {
            monitoring_gauges(&mut out, m);
        }
        out
    }
}

/// The figures of the latest monitoring check (`winsignal monitor check`, `serve --monitor-every`),
/// each labelled with the model checked; a figure that could not be measured is left out.
fn monitoring_gauges(out: &mut String, m: &winsignal_workspace::alerts::Latest) {
    let model = format!("model_id=\"{}\"", escape(&m.model_id));
    let gauge = |out: &mut String, name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{model}}} {v}"
            );
        }
    };
    gauge(
        out,
        "winsignal_monitor_last_check_timestamp_seconds",
        "When the latest monitoring check ran (Unix seconds).",
        Some(m.checked_at.0 as f64 / 1000.0),
    );
    gauge(
        out,
        "winsignal_monitor_live_auc",
        "AUC on the deals closed since the model was made active (else since it was trained).",
        m.live_auc,
    );
    gauge(
        out,
        "winsignal_monitor_auc_floor",
        "The live AUC below which a rollback is recommended: the holdout AUC less the gate's tolerance.",
        m.auc_floor,
    );
    gauge(
        out,
        "winsignal_monitor_holdout_auc",
        "Realised AUC on the latest holdout.",
        m.holdout_auc,
    );
    gauge(
        out,
        "winsignal_monitor_holdout_estimated_auc",
        "AUC on the latest holdout estimated from the probabilities alone.",
        m.holdout_estimated_auc,
    );
    gauge(
        out,
        "winsignal_monitor_open_estimated_auc",
        "AUC expected of the deals open now, from their probabilities alone (before outcomes).",
        m.open_estimated_auc,
    );
    gauge(
        out,
        "winsignal_monitor_estimate_trusted",
        "1 when the estimate before outcomes came within 0.03 of the realised AUC on the holdout.",
        Some(f64::from(u8::from(m.estimate_trusted))),
    );
    gauge(
        out,
        "winsignal_monitor_window_snapshots",
        "Snapshots in the latest drift window.",
        Some(m.window_snapshots as f64),
    );
    gauge(
        out,
        "winsignal_monitor_score_psi",
        "PSI of P(win) in the latest window against the training snapshots.",
        m.score_psi,
    );
    gauge(
        out,
        "winsignal_monitor_drift_alarms",
        "Features alarming in the latest window.",
        Some(m.features.iter().filter(|f| f.alarm).count() as f64),
    );
    gauge(
        out,
        "winsignal_monitor_alerts_firing",
        "Monitoring alerts firing after the latest check.",
        Some(m.firing as f64),
    );
    if !m.features.is_empty() {
        let _ = writeln!(
            out,
            "# HELP winsignal_monitor_feature_psi PSI of each feature in the latest window against the training snapshots.\n# TYPE winsignal_monitor_feature_psi gauge"
        );
        for f in m.features.iter().filter(|f| f.psi.is_finite()) {
            let _ = writeln!(
                out,
                "winsignal_monitor_feature_psi{{{model},feature=\"{}\"}} {}",
                escape(&f.feature),
                f.psi
            );
        }
    }
}

/// A label value as the exposition format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
