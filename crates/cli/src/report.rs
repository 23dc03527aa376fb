//! `winsignal report`: the HTML page for sales leaders (built by [`winsignal_workspace::report`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use winsignal_store::Store;

use crate::features::ModelCatalogArg;
use crate::progress::Bar;
use crate::Global;

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub catalog: ModelCatalogArg,
    /// Where to write the HTML file.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
}

pub fn run(global: &Global, store: &dyn Store, args: &ReportArgs) -> Result<()> {
    // Fail before the replay and the fits, not after them.
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "--out {}: the directory {} does not exist",
            args.out.display(),
            dir.display()
        );
    }
    let mut bar = Bar::new(global.quiet);
    winsignal_workspace::report::write_report(
        store,
        args.catalog.catalog.as_deref(),
        &args.out,
        &mut bar,
    )?;
    bar.finish();
    if !global.quiet {
        eprintln!("wrote the report to {}", args.out.display());
    }
    Ok(())
}
