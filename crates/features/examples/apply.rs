//! Times `Engine::apply` into a warm engine on one core: the workspace's events in arrival order, the
//! first part applied to warm the engine, the rest (the newest `SHARE`, default 0.2) applied one at a
//! time with the touched set each returns — what a live service does with every event it accepts.
//! `cargo run --release -p winsignal-features --example apply -- DATA_DIR [SHARE]`

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use winsignal_core::Kind;
use winsignal_features::engine::Observation;
use winsignal_features::{Context, Engine};
use winsignal_store::{EmbeddedStore, StoreRead, StoredEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: apply DATA_DIR [SHARE]")?;
    let share: f64 = args.next().map_or(Ok(0.2), |s| s.parse())?;
    // Opening creates a store where there is none: refuse a directory that is not a workspace.
    if !std::path::Path::new(&dir).join("store.sqlite").is_file() {
        return Err(format!("{dir}: not a workspace (no store.sqlite in it)").into());
    }
    let store = EmbeddedStore::open(std::path::Path::new(&dir))?;
    let ctx = Context::from_store(&store)?;
    let kinds = [
        Kind::Activities,
        Kind::ProductEvents,
        Kind::MarketingTouches,
    ];
    let mut events: Vec<StoredEvent> = store.events(&kinds)?.collect::<Result<_, _>>()?;
    // Arrival order: what a live service sees.
    events.sort_by_key(|e| e.seq);
    let cut = events.len() - (events.len() as f64 * share) as usize;
    fn obs(e: &StoredEvent) -> Observation<'_> {
        Observation {
            seq: e.seq,
            key: &e.key,
            record: &e.record,
        }
    }
    let mut engine = Engine::new(ctx);
    for e in &events[..cut] {
        engine.apply(&obs(e));
    }
    let timed = &events[cut..];
    let started = Instant::now();
    let mut touched = 0usize;
    for e in timed {
        let (_, t) = engine.apply(&obs(e));
        touched += t.deals.len() + t.accounts.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "warmed with {} events; applied {} one at a time in {seconds:.3} s: {:.0} events/s on one core \
         ({touched} deal and account touches returned)",
        cut,
        timed.len(),
        timed.len() as f64 / seconds
    );
    Ok(())
}
