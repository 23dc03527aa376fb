//! Times each definition of the default catalog over every open deal at the end of a workspace's data:
//! a full evaluation, and what the live memo spends when the time moves by a millisecond with nothing
//! new (the definitions it must evaluate again because their window moves with the time), in all and
//! per definition.
//! `cargo run --release -p winsignal-features --example defcost -- DATA_DIR`

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use winsignal_features::eval::{evaluate, View};
use winsignal_features::memo::Memo;
use winsignal_features::snapshot;
use winsignal_features::{default_catalog, Context, Engine};
use winsignal_store::EmbeddedStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: defcost DATA_DIR")?;
    // Opening creates a store where there is none: refuse a directory that is not a workspace.
    if !std::path::Path::new(&dir).join("store.sqlite").is_file() {
        return Err(format!("{dir}: not a workspace (no store.sqlite in it)").into());
    }
    let store = EmbeddedStore::open(std::path::Path::new(&dir))?;
    let ctx = Context::from_store(&store)?;
    let engine = Engine::replay(ctx, &store, &mut |_| {})?;
    let as_of = snapshot::horizon(&engine).0 + 1;
    let ctx = engine.context();
    let open: Vec<u32> = (0..ctx.opps.len() as u32)
        .filter(|&o| {
            let o = &ctx.opps[o as usize];
            o.created.0 < as_of && o.closed.is_none_or(|c| c.0 >= as_of)
        })
        .collect();
    let catalog = default_catalog();
    println!("{} open deals at {}", open.len(), as_of);
    let mut rows = Vec::new();
    for def in &catalog.behaviours {
        let t = Instant::now();
        let mut sum = 0.0;
        for &o in &open {
            let v = View::new(&engine, o, as_of);
            sum += evaluate(def, &v, &mut |_, _| {}).abs().min(1.0);
        }
        rows.push((t.elapsed().as_secs_f64() * 1000.0, def.id.clone(), sum));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, id, _) in &rows {
        println!("{ms:9.2} ms  {id}");
    }
    let mut memo = Memo::new();
    for &o in &open {
        memo.values(&engine, &catalog, o, as_of);
    }
    let t = Instant::now();
    for &o in &open {
        memo.values(&engine, &catalog, o, as_of + 1);
    }
    println!(
        "memo, the time moved 1 ms, nothing new: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    // The same per definition, costliest first.
    let mut rows = Vec::new();
    for def in &catalog.behaviours {
        let mut one = catalog.clone();
        one.behaviours = vec![def.clone()];
        let mut memo = Memo::new();
        for &o in &open {
            memo.values(&engine, &one, o, as_of);
        }
        let t = Instant::now();
        for &o in &open {
            memo.values(&engine, &one, o, as_of + 1);
        }
        rows.push((t.elapsed().as_secs_f64() * 1000.0, def.id.clone()));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, id) in rows.iter().take(10) {
        println!("{ms:9.2} ms  {id} (memo, the time moved 1 ms)");
    }
    Ok(())
}
