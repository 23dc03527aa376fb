//! The outbox worker: sends each webhook the messages of the score changes recorded since its cursor,
//! in order, signed, retrying with backoff, and records how far it got. What is sent, to whom and how
//! it is signed are the application layer's rules ([`hooks`]); this is transport.
//!
//! One thread per webhook, so a receiver that is down delays only its own messages. A thread finds
//! work when a commit wakes it ([`Outbox::wake`]) or once a second (webhooks added by the CLI while the
//! server runs, changes recorded by another process). A transient failure (no connection, a timeout,
//! 408, 429, 5xx) is retried with [`hooks::backoff`] for as long as it takes; any other 4xx is recorded
//! as refused and the worker moves on.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use winsignal_core::Ts;
use winsignal_workspace::hooks::{self, Hook, Message, Refusal};

use crate::Service;

/// At most this many score changes are read, and delivered before the cursor is recorded, at a time.
const BATCH: usize = 500;
/// How long a thread with nothing to send waits before looking again.
const IDLE: Duration = Duration::from_secs(1);

/// Wakes the webhook threads when changes are recorded.
#[derive(Default)]
pub(crate) struct Outbox {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Outbox {
    /// Tells every webhook thread that changes were recorded.
    pub fn wake(&self) {
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }

    /// Waits until woken after `seen`, or `timeout`; returns the generation now.
    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard
    }

    fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the outbox until the service stops: starts a thread for each webhook as it appears and lets
/// it end when the webhook is removed or changed.
pub(crate) fn run(service: Arc<Service>) {
    let mut running: BTreeMap<String, (Hook, std::thread::JoinHandle<()>)> = BTreeMap::new();
    let mut seen = service.outbox.generation();
    while !stopping(&service) {
        match hooks::hooks(&service.store) {
            Ok(current) => {
                running.retain(|name, (hook, thread)| {
                    !thread.is_finished() && current.hooks.get(name) == Some(hook)
                });
                for (name, hook) in current.hooks {
                    if running.contains_key(&name) {
                        continue;
                    }
                    let (s, h) = (service.clone(), hook.clone());
                    let spawned = std::thread::Builder::new()
                        .name(format!("webhook {name}"))
                        .spawn(move || deliver(&s, &h));
                    match spawned {
                        Ok(thread) => {
                            running.insert(name, (hook, thread));
                        }
                        Err(e) => {
                            tracing::error!(webhook = %name, error = %e, "cannot start the webhook thread")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot read the webhooks"),
        }
        seen = service.outbox.wait(seen, IDLE);
    }
    // The threads see the stop too; each finishes the attempt it is in.
    service.outbox.wake();
    for (_, (_, thread)) in running {
        let _ = thread.join();
    }
}

fn stopping(s: &Service) -> bool {
    *s.stopping.borrow()
}

/// Whether `hook` is still configured as it was when its thread started.
fn current(s: &Service, hook: &Hook) -> bool {
    hooks::hooks(&s.store).map_or(true, |h| h.hooks.get(&hook.name) == Some(hook))
}

/// Delivers `hook`'s messages until the service stops or the webhook is removed or changed.
fn deliver(s: &Service, hook: &Hook) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("winsignal/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut seen = s.outbox.generation();
    while !stopping(s) && current(s, hook) {
        match step(s, hook, &agent) {
            Ok(true) => {}
            Ok(false) => seen = s.outbox.wait(seen, IDLE),
            Err(e) => {
                tracing::error!(webhook = %hook.name, error = %format!("{e:#}"), "webhook delivery stopped; trying again");
                seen = s.outbox.wait(seen, IDLE);
            }
        }
    }
}

/// Sends one batch of `hook`'s messages and records the progress. Returns whether there was anything
/// to go through.
fn step(s: &Service, hook: &Hook, agent: &ureq::Agent) -> anyhow::Result<bool> {
    let progress = hooks::progress(&s.store, hook)?;
    let (messages, through) = hooks::pending(&s.store, hook, progress.through, BATCH)?;
    if through == progress.through {
        return Ok(false);
    }
    let (mut delivered, mut refused) = (0u64, Vec::new());
    for m in &messages {
        match send_until_done(s, hook, agent, m) {
            Some(None) => delivered += 1,
            Some(Some(r)) => refused.push(r),
            // Stopping, or the webhook changed: done with everything before this message.
            None => {
                hooks::advance(&s.store, hook, &progress, m.seq - 1, delivered, &refused)?;
                return Ok(false);
            }
        }
    }
    hooks::advance(&s.store, hook, &progress, through, delivered, &refused)?;
    Ok(true)
}

/// Sends `m` until the receiver takes it (`Some(None)`) or refuses it for good (`Some(Some(_))`);
/// `None` when the service stops or the webhook changes first.
fn send_until_done(
    s: &Service,
    hook: &Hook,
    agent: &ureq::Agent,
    m: &Message,
) -> Option<Option<Refusal>> {
    let mut attempt = 0u32;
    loop {
        let outcome = send(agent, hook, m);
        let failure = match outcome {
            Ok((status, _)) if (200..300).contains(&status) => {
                s.metrics.webhook_delivered.fetch_add(1, Relaxed);
                return Some(None);
            }
            Ok((status, answer)) if !hooks::retry_on(status) => {
                s.metrics.webhook_refused.fetch_add(1, Relaxed);
                tracing::warn!(webhook = %hook.name, seq = m.seq, status, "the receiver refused a message; it is recorded and not sent again");
                return Some(Some(Refusal {
                    seq: m.seq,
                    status,
                    answer,
                }));
            }
            Ok((status, _)) => format!("status {status}"),
            Err(e) => e,
        };
        attempt += 1;
        s.metrics.webhook_retries.fetch_add(1, Relaxed);
        let wait = hooks::backoff(attempt);
        tracing::warn!(webhook = %hook.name, seq = m.seq, attempt, failure = %failure, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; retrying");
        // Sleeps in short steps, so a stop is not held up by a long backoff.
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if stopping(s) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
        }
        if !current(s, hook) {
            return None;
        }
    }
}

/// One attempt: the status and the start of the answer, or what kept it from being answered. The
/// error never names the URL (a Slack webhook's URL is its secret).
fn send(agent: &ureq::Agent, hook: &Hook, m: &Message) -> Result<(u16, String), String> {
    let now = Ts::now().0.div_euclid(1000);
    let signature = hooks::signature(&hook.secret, now, &m.body);
    let request = match m.method {
        "PATCH" => agent.patch(&m.url),
        _ => agent.post(&m.url),
    };
    let mut request = request
        .header("Content-Type", "application/json")
        .header("Winsignal-Signature", &signature)
        .header("Winsignal-Delivery", &m.idempotency_key)
        .header("Idempotency-Key", &m.idempotency_key);
    for (name, value) in &hook.headers {
        request = request.header(name, value);
    }
    let mut response = request.send(&m.body[..]).map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let answer = response
        .body_mut()
        .with_config()
        .limit(2048)
        .read_to_string()
        .unwrap_or_default();
    Ok((status, answer.chars().take(500).collect()))
}

/// What went wrong on the way, without the URL.
fn transport_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => format!("connection: {}", io.kind()),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS handshake failed".into(),
        _ => "request failed".into(),
    }
}
