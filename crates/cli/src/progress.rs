//! Progress bars on a terminal; silence when stderr is not one, or with --quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use winsignal_ingest::Progress;

pub struct Bar {
    bar: Option<ProgressBar>,
    file: String,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(1);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:40!} [{bar:30}] {percent:>3}% {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Bar {
            bar,
            file: String::new(),
        }
    }

    pub fn update(&mut self, p: Progress<'_>) {
        let Some(b) = &self.bar else { return };
        if p.file != self.file {
            self.file = p.file.to_string();
            let name = std::path::Path::new(p.file)
                .file_name()
                .map_or(p.file.into(), |n| n.to_string_lossy().into_owned());
            b.set_message(crate::output::terminal_safe(&name).into_owned());
        }
        b.set_length(p.bytes_total.max(1));
        b.set_position(p.bytes_done.min(p.bytes_total));
    }

    /// A message line for phases that are not file reads.
    pub fn phase(&mut self, message: &str, done: u64, total: u64) {
        let Some(b) = &self.bar else { return };
        b.set_message(message.to_string());
        b.set_length(total.max(1));
        b.set_position(done.min(total));
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl winsignal_workspace::Progress for Bar {
    fn phase(&mut self, message: &str, done: u64, total: u64) {
        Bar::phase(self, message, done, total);
    }

    fn file(&mut self, p: Progress<'_>) {
        self.update(p);
    }

    fn finish(&mut self) {
        Bar::finish(self);
    }
}
