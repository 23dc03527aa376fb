//! `winsignal serve`: the HTTP service over one workspace. It parses requests and renders answers; what
//! it answers comes from the application layer ([`winsignal_workspace`]): who a token belongs to and
//! what they may see ([`access`]), the live scores ([`Live`]), and ingest (the same code path as
//! `winsignal ingest`). Endpoints, error codes and shapes: docs/api.md.

mod api;
mod error;
mod feedback;
mod metrics;
mod models;
mod openapi;
mod outbox;
mod review;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, Result};
use winsignal_store::EmbeddedStore;
use winsignal_workspace::access;
use winsignal_workspace::live::Live;

pub use error::{ApiError, Code};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace directory (shown in logs; the store is opened by the caller).
    pub data: PathBuf,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// The behaviour catalog findings and scorecards are computed with (`serve --catalog`).
    pub catalog: winsignal_features::Catalog,
    /// Which time scores are as of (`serve --clock`).
    pub clock: winsignal_workspace::live::Clock,
    /// How often every open deal is rescored as of the clock (`serve --rescore-every`).
    pub rescore_every: std::time::Duration,
    /// How often the monitoring check runs (`serve --monitor-every`); never when `None`.
    pub monitor_every: Option<std::time::Duration>,
    /// The days of its drift window (`serve --monitor-window`).
    pub monitor_window_days: u32,
    /// How long after the last training the win model is retrained (`serve --retrain-every`); never
    /// when `None`.
    pub retrain_every: Option<std::time::Duration>,
    /// The catalog named by `serve --catalog`, if one was: retraining uses it instead of the active
    /// model's own.
    pub retrain_catalog: Option<winsignal_features::Catalog>,
}

/// What every request handler reads: the store, and the live state once it is loaded.
pub(crate) struct Service {
    pub store: EmbeddedStore,
    pub config: Config,
    /// `None` until the engine and scores are loaded (`/readyz` says 503 meanwhile).
    pub live: RwLock<Option<Live>>,
    /// One commit at a time in this process (the store also serialises writers across processes).
    pub writing: tokio::sync::Mutex<()>,
    /// Requests waiting for the next commit, which takes them all (`api::write`).
    pub queue: std::sync::Mutex<Vec<api::Pending>>,
    /// Score changes as they are made, for the event streams (`GET /v1/stream`).
    pub changes: tokio::sync::broadcast::Sender<Arc<Published>>,
    /// How many score changes were published (the last `Published::number`).
    pub published: std::sync::Mutex<u64>,
    pub metrics: metrics::Metrics,
    /// Wakes the webhook deliveries when score changes are recorded.
    pub outbox: outbox::Outbox,
    /// The findings and scorecards last computed, and when (`GET /v1/findings`, `/v1/reps`). Held
    /// while they are computed, so concurrent requests wait for one computation.
    pub insights: tokio::sync::Mutex<Option<Computed>>,
    /// Becomes true when the server is stopping: open event streams end, so in-flight requests can.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Findings and scorecards with the time they were computed.
pub(crate) struct Computed {
    pub at: std::time::Instant,
    pub at_wall: winsignal_core::Ts,
    pub insights: Arc<winsignal_workspace::insights::Insights>,
}

/// A score change as the event streams send it: numbered in the order made, from 1 at start.
pub(crate) struct Published {
    pub number: u64,
    pub change: winsignal_workspace::live::ScoreChange,
}

/// How many score changes a slow stream may fall behind before it is told it missed some.
const STREAM_BUFFER: usize = 65_536;

impl Service {
    /// The caller of a request: the principal its bearer token belongs to, and the rows it may see.
    pub(crate) fn caller(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<(access::Principal, access::Scope), ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(token_of)
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthorized,
                    "send a token: `Authorization: Bearer <token>`, or as a Segment write key (HTTP Basic, the token as the user name), made by `winsignal users add`",
                )
            })?;
        let users = access::users(&self.store).map_err(ApiError::internal)?;
        let principal = access::authenticate(&users, &token).ok_or_else(|| {
            ApiError::new(Code::Unauthorized, "the token is not known or was revoked")
        })?;
        let scope = access::scope(&principal, &self.store).map_err(ApiError::internal)?;
        Ok((principal, scope))
    }
}

/// Serves the workspace `store` on `listener` until `shutdown` completes. The engine and scores are
/// loaded on a blocking thread after the listener is up: `/healthz` answers at once, `/readyz` and the
/// data endpoints once the state is loaded. In-flight requests finish before this returns.
pub async fn serve(
    mut store: EmbeddedStore,
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Many small batches: each would otherwise read every segment's event keys.
    store.keep_event_index();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let service = Arc::new(Service {
        store,
        config,
        live: RwLock::new(None),
        writing: tokio::sync::Mutex::new(()),
        queue: std::sync::Mutex::new(Vec::new()),
        changes: tokio::sync::broadcast::channel(STREAM_BUFFER).0,
        published: std::sync::Mutex::new(0),
        metrics: metrics::Metrics::default(),
        outbox: outbox::Outbox::default(),
        insights: tokio::sync::Mutex::new(None),
        stopping,
    });
    // Streams end first, then the requests in flight are let finish.
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let loading = {
        let service = service.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let live = Live::open(&service.store, service.config.clock)?;
            // The first write is then as quick as the others.
            service.store.warm_event_index()?;
            *service
                .live
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(live);
            Ok(())
        })
    };
    let app = api::router(service.clone());
    // Each answer and each streamed change is sent as soon as it is written: without TCP_NODELAY, a
    // small write behind one not yet acknowledged waits for the client's delayed ACK (up to 40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let served = tokio::spawn(async move { server.await });
    // A workspace that cannot be loaded stops the service with its error.
    loading
        .await
        .context("loading the workspace stopped")?
        .with_context(|| {
            format!(
                "cannot serve the workspace at {}",
                service.config.data.display()
            )
        })?;
    tracing::info!(data = %service.config.data.display(), "ready");
    // Changes recorded at start (and any left undelivered by the last run) go out now.
    let outbox = {
        let service = service.clone();
        std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || outbox::run(service))
            .context("cannot start the webhook outbox")?
    };
    let monitoring = match service.config.monitor_every {
        Some(every) => {
            let service = service.clone();
            Some(
                std::thread::Builder::new()
                    .name("monitor".into())
                    .spawn(move || monitor(&service, every))
                    .context("cannot start the monitoring check")?,
            )
        }
        None => None,
    };
    let retraining = match service.config.retrain_every {
        Some(every) => {
            let service = service.clone();
            Some(
                std::thread::Builder::new()
                    .name("retrain".into())
                    .spawn(move || retrain(&service, every))
                    .context("cannot start the scheduled retraining")?,
            )
        }
        None => None,
    };
    let rescoring = tokio::spawn(api::rescore_on_the_clock(service.clone()));
    let following = tokio::spawn(models::follow_registry(service.clone()));
    served.await.context("the server stopped")??;
    rescoring.abort();
    following.abort();
    // The outbox and the monitoring check see the stop; each ends after what it is doing.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = outbox.join();
        for thread in [monitoring, retraining].into_iter().flatten() {
            let _ = thread.join();
        }
    })
    .await;
    tracing::info!("stopped: every request in flight answered");
    Ok(())
}

/// Runs the monitoring check every `every` (the first at once) until the service stops, waking the
/// webhooks when it records alerts. A failed check is logged and tried again at the next turn.
fn monitor(s: &Service, every: std::time::Duration) {
    let stopping = || *s.stopping.borrow();
    while !stopping() {
        let started = std::time::Instant::now();
        match winsignal_workspace::alerts::check(
            &s.store,
            s.config.monitor_window_days,
            &mut winsignal_workspace::Silent,
        ) {
            Ok(c) => {
                for (seq, a) in &c.recorded {
                    tracing::warn!(alert = %a.key, seq, state = ?a.state, summary = %a.summary, "monitoring alert");
                }
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    recorded = c.recorded.len(),
                    firing = c.firing.len(),
                    "monitoring check"
                );
                if !c.recorded.is_empty() {
                    s.outbox.wake();
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the monitoring check failed; trying again at the next turn")
            }
        }
        // Sleeps in short steps, so a stop is not held up.
        let until = started + every;
        while !stopping() && std::time::Instant::now() < until {
            std::thread::sleep(
                std::time::Duration::from_millis(100)
                    .min(until.saturating_duration_since(std::time::Instant::now())),
            );
        }
    }
}

/// Retrains the win model `every` after the last training (as the registry records it, by any process)
/// until the service stops. A retrained model is a candidate like any other; the registry's policy
/// decides whether it goes live, and [`models::follow_registry`] switches to it if it does.
fn retrain(s: &Service, every: std::time::Duration) {
    use winsignal_core::Ts;
    let stopping = || *s.stopping.borrow();
    let after = |t: Ts, d: std::time::Duration| t.plus_millis(d.as_millis() as i64);
    // After an attempt that recorded no training: when to try again.
    let mut not_before = Ts(0);
    while !stopping() {
        let due = match winsignal_workspace::registry::Registry::read(&s.store) {
            Ok(r) => r.last_trained_at().map_or(Ts(0), |t| after(t, every)),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read the model registry for the retraining schedule");
                after(Ts::now(), std::time::Duration::from_secs(60))
            }
        }
        .max(not_before);
        let now = Ts::now();
        if now < due {
            // Looks again at least every second: another process may train meanwhile.
            let wait = std::time::Duration::from_millis((due.0 - now.0).min(1000) as u64);
            let until = std::time::Instant::now() + wait;
            while !stopping() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(100).min(wait));
            }
            continue;
        }
        let started = std::time::Instant::now();
        let trained = winsignal_workspace::models::retrain_catalog(
            &s.store,
            s.config.retrain_catalog.as_ref(),
        )
        .and_then(|catalog| {
            winsignal_workspace::models::retrain(
                &s.store,
                catalog,
                "rule:schedule",
                &mut winsignal_workspace::Silent,
            )
        });
        match trained {
            Ok(t) => {
                let took_ms = started.elapsed().as_millis() as u64;
                match &t.registered {
                    Some(r) => {
                        tracing::info!(model = %t.id, took_ms, stage = r.stage.as_str(), why = %r.why, "retrained on schedule")
                    }
                    None => {
                        tracing::info!(model = %t.id, took_ms, "retrained on schedule: the same data gave a model the store holds; nothing recorded")
                    }
                }
                // Nothing recorded: the last training is as it was, so wait a full interval from now.
                not_before = if t.new {
                    Ts(0)
                } else {
                    after(Ts::now(), every)
                };
            }
            Err(e) => {
                not_before = after(Ts::now(), every.min(std::time::Duration::from_secs(3600)));
                tracing::error!(error = %format!("{e:#}"), "scheduled retraining failed; trying again in an hour (or the interval, if shorter)");
            }
        }
    }
}

/// The address a listener is bound to, for the line `serve` prints.
pub fn bound(listener: &tokio::net::TcpListener) -> Result<SocketAddr> {
    Ok(listener.local_addr()?)
}

/// The token of an `Authorization` header: `Bearer <token>`, or HTTP Basic with the token as the user
/// name and any password (how Segment's libraries send their write key).
fn token_of(header: &str) -> Option<String> {
    if let Some(t) = header.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    let decoded = base64_decode(header.strip_prefix("Basic ")?.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

/// Standard base64 (RFC 4648, padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_as_bearer_or_as_a_basic_user_name() {
        assert_eq!(token_of("Bearer wst_1_ab ").as_deref(), Some("wst_1_ab"));
        // "wst_1_ab:" and "wst_1_ab:x" in base64 (`printf 'wst_1_ab:' | base64`).
        assert_eq!(token_of("Basic d3N0XzFfYWI6").as_deref(), Some("wst_1_ab"));
        assert_eq!(
            token_of("Basic d3N0XzFfYWI6eA==").as_deref(),
            Some("wst_1_ab")
        );
        assert_eq!(token_of("Basic Og=="), None); // ":" alone: no user name
        assert_eq!(token_of("Basic !!"), None);
        assert_eq!(token_of("Digest x"), None);
    }
}
