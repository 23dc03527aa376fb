//! Generates the demo company and prints the manifest summary and the time taken:
//! `cargo run -p winsignal-demo --release --example demo_timing -- [scale] [out_dir] [canonical]`.

use std::time::Instant;

use winsignal_demo::{generate, DemoConfig, Layout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let scale: f64 = args.get(1).map_or(Ok(1.0), |s| s.parse())?;
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/tmp/winsignal-demo".to_string());
    let layout = if args.get(3).is_some_and(|s| s == "canonical") {
        Layout::Canonical
    } else {
        Layout::Mixed
    };
    let cfg = DemoConfig {
        scale,
        layout,
        ..DemoConfig::default()
    };
    let started = Instant::now();
    let manifest = generate(&cfg, std::path::Path::new(&out), &mut |_, _| {})?;
    let elapsed = started.elapsed();
    for f in &manifest.files {
        println!(
            "{:45} {:>10} rows {:>4} bad",
            f.path.display(),
            f.rows,
            f.injected_bad_rows
        );
    }
    println!("counts: {:?}", manifest.counts);
    println!(
        "strongest {} weakest {}",
        manifest.strongest_rep, manifest.weakest_rep
    );
    let bad: u64 = manifest.files.iter().map(|f| f.injected_bad_rows).sum();
    println!(
        "bad rows {bad}; generated in {:.2} s",
        elapsed.as_secs_f64()
    );
    Ok(())
}
