//! `behaviours suggest`: a starting catalog written from the workspace's attributes (built by
//! [`winsignal_workspace::suggest`]), printed or written to a file.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use winsignal_store::Store;

use crate::progress::Bar;
use crate::Global;

#[derive(Args)]
pub struct SuggestArgs {
    /// Write the catalog to FILE (refused if it exists) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A value that means "no value" in every attribute, besides the placeholders recognised anyway
    /// (`Select…`, `N/A`, `NA`, `-`, `?`, `unknown`, `none`, `null`, …); repeatable.
    #[arg(long = "missing", value_name = "VALUE")]
    pub missing: Vec<String>,
}

pub fn run_suggest(global: &Global, store: &dyn Store, args: &SuggestArgs) -> Result<()> {
    if let Some(out) = &args.out {
        if out.exists() {
            bail!(
                "{} exists; give another --out or remove it (suggest never overwrites a catalog)",
                out.display()
            );
        }
    }
    let mut bar = Bar::new(global.quiet);
    let s = winsignal_workspace::suggest::suggest(store, &global.data, &args.missing, &mut bar)?;
    bar.finish();
    match &args.out {
        Some(out) => {
            crate::output::write_atomically(out, |w| {
                use std::io::Write as _;
                Ok(w.write_all(s.text.as_bytes())?)
            })?;
            if global.quiet {
                return Ok(());
            }
            eprintln!(
                "wrote {}: {} definitions from {} attributes ({} left out or commented out), {} controls; {} leakage suspect{} commented out. Review it, then `winsignal behaviours check {}`.",
                out.display(),
                s.kept,
                s.attributes,
                s.attributes - s.kept,
                s.controls,
                s.suspects,
                if s.suspects == 1 { "" } else { "s" },
                out.display()
            );
        }
        None => print!("{}", s.text),
    }
    Ok(())
}
