//! A progress bar for loads, shown only on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use carelake_ingest::{Progress, ProgressEvent};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub(crate) struct LoadProgress {
    bar: ProgressBar,
}

impl LoadProgress {
    /// A progress bar when standard error is a terminal; nothing otherwise.
    pub(crate) fn for_terminal() -> Option<Arc<dyn Progress>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>6} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Some(Arc::new(Self { bar }))
    }
}

impl Progress for LoadProgress {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Phase { name, total_bytes } => {
                self.bar.reset();
                self.bar.set_length(total_bytes);
                self.bar.set_message(name);
            }
            ProgressEvent::Done => self.bar.finish_and_clear(),
        }
    }

    fn bytes_read(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}
