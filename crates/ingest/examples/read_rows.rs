//! Reader throughput on its own: `cargo run --release -p winsignal-ingest --example read_rows -- FILE.csv`
//! reads every row of a CSV file (no validation, no store) and prints rows, bad rows and MB/s.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: read_rows FILE.csv")?;
    let path = std::path::Path::new(&path);
    let started = Instant::now();
    let mut rows = winsignal_ingest::read::CsvRows::open(path, b',')?;
    let (mut good, mut bad, mut bytes) = (0u64, 0u64, 0usize);
    while let Some(row) = rows.next_row()? {
        match row {
            Ok(r) => {
                good += 1;
                bytes += r.values.iter().map(String::len).sum::<usize>();
            }
            Err(_) => bad += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = rows.bytes_total as f64 / 1e6;
    println!(
        "{good} rows, {bad} bad, {bytes} field bytes, {mb:.0} MB in {secs:.2} s: {:.0} MB/s",
        mb / secs
    );
    Ok(())
}
