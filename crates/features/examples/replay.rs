//! Times the feature pass on a workspace: entities, replay of every event, every snapshot.
//! `cargo run --release -p winsignal-features --example replay -- DATA_DIR`

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use winsignal_features::{default_catalog, snapshot, Context, Engine};
use winsignal_store::EmbeddedStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: replay DATA_DIR")?;
    // Opening creates a store where there is none: refuse a directory that is not a workspace.
    if !std::path::Path::new(&dir).join("store.sqlite").is_file() {
        return Err(format!("{dir}: not a workspace (no store.sqlite in it)").into());
    }
    let store = EmbeddedStore::open(std::path::Path::new(&dir))?;
    let catalog = default_catalog();
    let t0 = Instant::now();
    let ctx = Context::from_store(&store)?;
    let t1 = Instant::now();
    let engine = Engine::replay(ctx, &store, &mut |_| {})?;
    let t2 = Instant::now();
    let horizon = snapshot::horizon(&engine);
    let snaps = snapshot::snapshots(&engine, &catalog, horizon, &mut |_, _| {});
    let t3 = Instant::now();
    println!(
        "entities {:.2} s, replay {} items {:.2} s, {} snapshots {:.2} s, total {:.2} s",
        (t1 - t0).as_secs_f64(),
        engine.applied(),
        (t2 - t1).as_secs_f64(),
        snaps.len(),
        (t3 - t2).as_secs_f64(),
        (t3 - t0).as_secs_f64()
    );
    Ok(())
}
