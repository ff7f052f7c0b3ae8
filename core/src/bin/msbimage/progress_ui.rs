//! Rendering of pull progress on stderr: indicatif bars, plain milestone lines, JSON lines, or
//! nothing.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{
    HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike,
};
use microsandbox_image::{Digest, Error, ErrorKind, PullProgress};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Bars, even when stderr is not a terminal (ANSI escapes are written regardless).
    Tty,
    /// One line per milestone: resolved, layer cached/downloaded/extracted, complete.
    Plain,
    /// One JSON object per progress event, one per line.
    Json,
    /// Nothing.
    None,
}

/// Receives every progress event of one pull and draws it.
pub enum Reporter {
    Silent,
    Json,
    Plain(Plain),
    Bars(Box<Bars>),
}

impl Reporter {
    /// `indexing`: whether layers get a lookup index after extraction (not `--no-index`).
    pub fn new(mode: ProgressMode, indexing: bool) -> Reporter {
        let stderr_is_tty = std::io::stderr().is_terminal();
        let dumb = std::env::var_os("TERM").is_none_or(|t| t == "dumb");
        match mode {
            ProgressMode::None => Reporter::Silent,
            ProgressMode::Json => Reporter::Json,
            ProgressMode::Plain => Reporter::Plain(Plain::default()),
            ProgressMode::Auto if !stderr_is_tty || dumb => Reporter::Plain(Plain::default()),
            ProgressMode::Auto => {
                Reporter::Bars(Box::new(Bars::new(ProgressDrawTarget::stderr(), indexing)))
            }
            ProgressMode::Tty if stderr_is_tty && !dumb => {
                Reporter::Bars(Box::new(Bars::new(ProgressDrawTarget::stderr(), indexing)))
            }
            ProgressMode::Tty => {
                // indicatif hides itself off a terminal; draw with plain ANSI escapes.
                let target = ProgressDrawTarget::term_like_with_hz(Box::new(AnsiStderr), 20);
                let mut bars = Bars::new(target, indexing);
                bars.newline_at_end = true;
                Reporter::Bars(Box::new(bars))
            }
        }
    }

    pub fn event(&mut self, event: &PullProgress) {
        match self {
            Reporter::Silent => {}
            Reporter::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            Reporter::Plain(p) => p.event(event),
            Reporter::Bars(b) => b.event(event),
        }
    }

    /// The pull ended with `error` instead of a `Complete` event. Bars freeze (so the error
    /// line that follows does not get drawn over); the JSON stream ends with an `error` line,
    /// `{"type": "error", "kind": …, "message": …, "image": …, "layer": …, "blob": …}`.
    pub fn abandon(&mut self, error: &Error) {
        match self {
            Reporter::Bars(b) => b.abandon(if error.kind() == ErrorKind::Cancelled {
                "cancelled"
            } else {
                "failed"
            }),
            Reporter::Json => {
                let mut line = serde_json::json!({ "type": "error" });
                if let (Some(obj), Ok(serde_json::Value::Object(report))) =
                    (line.as_object_mut(), serde_json::to_value(error.report()))
                {
                    obj.extend(report);
                }
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Reporter::Silent | Reporter::Plain(_) => {}
        }
    }

    /// No more events will come: leave stderr at the start of a fresh line.
    pub fn end(&mut self) {
        // indicatif pads its last line to the terminal width and lets the terminal wrap; a
        // file or pipe needs the newline spelled out.
        if let Reporter::Bars(b) = self
            && b.newline_at_end
        {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

/// `layer 2/3` (1-based for humans; events count from 0).
fn layer_label(index: usize, count: usize) -> String {
    if count > 0 {
        format!("layer {}/{}", index + 1, count)
    } else {
        format!("layer {}", index + 1)
    }
}

/// `1 layer`, `3 layers`.
fn layers(n: usize) -> String {
    if n == 1 {
        "1 layer".to_string()
    } else {
        format!("{n} layers")
    }
}

/// `3.10 MiB`, or `nothing` for zero.
fn to_download(bytes: u64) -> String {
    match bytes {
        0 => "nothing".to_string(),
        n => HumanBytes(n).to_string(),
    }
}

/// Milestone lines.
#[derive(Default)]
pub struct Plain {
    layer_count: usize,
}

impl Plain {
    fn line(&self, s: std::fmt::Arguments<'_>) {
        let _ = writeln!(std::io::stderr().lock(), "{s}");
    }

    fn event(&mut self, event: &PullProgress) {
        let n = self.layer_count;
        match event {
            PullProgress::Resolved {
                reference,
                manifest_digest,
                layer_count,
                total_download_bytes,
            } => {
                self.layer_count = *layer_count;
                self.line(format_args!(
                    "resolved {reference} {manifest_digest} ({}, {} to download)",
                    layers(*layer_count),
                    to_download(*total_download_bytes)
                ));
            }
            PullProgress::LayerCached {
                layer_index,
                diff_id,
            } => self.line(format_args!(
                "{} cached {}",
                layer_label(*layer_index, n),
                diff_id.short()
            )),
            PullProgress::LayerWaiting {
                layer_index,
                holder_pid,
                ..
            } => self.line(format_args!(
                "{} waiting for {}",
                layer_label(*layer_index, n),
                holder(*holder_pid)
            )),
            PullProgress::RequestRetrying { .. } => {
                if let Some(line) = retrying(event, n) {
                    self.line(format_args!("{line}"));
                }
            }
            PullProgress::LayerDownloadComplete {
                layer_index,
                downloaded_bytes,
                ..
            } => self.line(format_args!(
                "{} downloaded {}",
                layer_label(*layer_index, n),
                HumanBytes(*downloaded_bytes)
            )),
            PullProgress::LayerExtractComplete {
                layer_index,
                diff_id,
                entries,
                bytes_extracted,
            } => self.line(format_args!(
                "{} extracted {}: {}, {entries} entries",
                layer_label(*layer_index, n),
                diff_id.short(),
                HumanBytes(*bytes_extracted)
            )),
            PullProgress::Complete {
                reference,
                manifest_digest,
                layer_count,
                cached,
            } => self.line(format_args!(
                "complete {reference} {manifest_digest} ({}{})",
                layers(*layer_count),
                if *cached { ", from cache" } else { "" }
            )),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Downloading,
    Extracting,
    Done,
}

struct LayerBar {
    bar: ProgressBar,
    label: String,
    phase: Phase,
    downloaded: u64,
    bytes_extracted: u64,
    entries: u64,
    /// `LayerExtractComplete` arrived (the layer is published; its index may still follow).
    extracted: bool,
    /// `LayerCached` arrived.
    was_cached: bool,
}

/// indicatif bars: a header line, then one bar per layer.
pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    reference: String,
    layers: Vec<LayerBar>,
    indexing: bool,
    /// Drawing with [`AnsiStderr`] to something that is not a terminal.
    newline_at_end: bool,
}

const TICKS: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✔"];

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress template is valid")
        .tick_strings(TICKS)
        .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    style("{spinner:.cyan} {msg}")
}

fn plain_style() -> ProgressStyle {
    style("{prefix} {msg}")
}

fn waiting_style() -> ProgressStyle {
    style("{prefix:.dim} {msg:.dim}")
}

fn download_style(known_total: bool) -> ProgressStyle {
    if known_total {
        style("{prefix} [{wide_bar:.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}")
    } else {
        style("{prefix} {spinner:.cyan} {bytes:>10} {msg}")
    }
}

fn extract_style() -> ProgressStyle {
    style("{prefix} {spinner:.cyan} {msg}")
}

fn done_style() -> ProgressStyle {
    style("{prefix} {msg:.green}")
}

const TICK: Duration = Duration::from_millis(100);

impl Bars {
    fn new(target: ProgressDrawTarget, indexing: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let header = multi.add(ProgressBar::new_spinner().with_style(spinner_style()));
        header.enable_steady_tick(TICK);
        Bars {
            multi,
            header,
            reference: String::new(),
            layers: Vec::new(),
            indexing,
            newline_at_end: false,
        }
    }

    fn layer(&mut self, index: usize) -> Option<&mut LayerBar> {
        self.layers.get_mut(index)
    }

    fn event(&mut self, event: &PullProgress) {
        match event {
            PullProgress::Resolving { reference } => {
                self.reference = reference.to_string();
                self.header.set_message(format!("resolving {reference}"));
            }
            PullProgress::Resolved {
                reference,
                layer_count,
                total_download_bytes,
                ..
            } => self.resolved(reference, *layer_count, *total_download_bytes),
            PullProgress::Complete {
                reference,
                layer_count,
                cached,
                ..
            } => self.complete(reference, *layer_count, *cached),
            PullProgress::RequestRetrying { .. } => {
                // Above the bars, where it stays: a retry is worth seeing after the fact.
                if let Some(line) = retrying(event, self.layers.len()) {
                    let _ = self.multi.println(line);
                }
            }
            _ => self.layer_event(event),
        }
    }

    /// The manifest is known: one waiting bar per layer.
    fn resolved(&mut self, reference: &str, layer_count: usize, total_download_bytes: u64) {
        self.header.set_message(format!(
            "{reference}: {}, {} to download",
            layers(layer_count),
            to_download(total_download_bytes)
        ));
        let width = layer_count.to_string().len();
        for i in 0..layer_count {
            let label = format!("layer {:>width$}/{layer_count}", i + 1);
            let bar = self.multi.add(
                ProgressBar::no_length()
                    .with_style(waiting_style())
                    .with_prefix(format!("  {label}"))
                    .with_message("waiting"),
            );
            self.layers.push(LayerBar {
                bar,
                label,
                phase: Phase::Waiting,
                downloaded: 0,
                bytes_extracted: 0,
                entries: 0,
                extracted: false,
                was_cached: false,
            });
        }
    }

    /// An event of one layer, drawn on its bar.
    fn layer_event(&mut self, event: &PullProgress) {
        let indexing = self.indexing;
        match event {
            PullProgress::LayerCached {
                layer_index,
                diff_id,
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.set_digest(diff_id);
                    l.was_cached = true;
                    l.finish("cached".into());
                }
            }
            PullProgress::LayerWaiting {
                layer_index,
                diff_id,
                holder_pid,
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.set_digest(diff_id);
                    l.bar
                        .set_message(format!("waiting for {}", holder(*holder_pid)));
                }
            }
            PullProgress::LayerDownloadProgress {
                layer_index,
                downloaded_bytes,
                total_bytes,
                ..
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.downloading(*downloaded_bytes, *total_bytes);
                }
            }
            PullProgress::LayerDownloadComplete {
                layer_index,
                downloaded_bytes,
                ..
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.downloaded(*downloaded_bytes);
                }
            }
            PullProgress::LayerExtractStarted {
                layer_index,
                diff_id,
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.set_digest(diff_id);
                }
            }
            PullProgress::LayerExtractProgress {
                layer_index,
                bytes_extracted,
                entries,
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.bytes_extracted = *bytes_extracted;
                    l.entries = *entries;
                    if l.phase == Phase::Extracting {
                        l.show_extraction();
                    }
                }
            }
            PullProgress::LayerExtractComplete {
                layer_index,
                diff_id,
                entries,
                bytes_extracted,
            } => {
                if let Some(l) = self.layer(*layer_index) {
                    l.set_digest(diff_id);
                    l.extracted(*bytes_extracted, *entries, indexing);
                }
            }
            PullProgress::LayerIndexStarted { layer_index } => {
                if let Some(l) = self.layer(*layer_index)
                    && l.phase != Phase::Done
                {
                    l.bar.set_message(format!(
                        "indexing ({} unpacked, {} entries)",
                        HumanBytes(l.bytes_extracted),
                        l.entries
                    ));
                }
            }
            PullProgress::LayerIndexComplete { layer_index, .. } => {
                if let Some(l) = self.layer(*layer_index) {
                    let msg = l.summary();
                    l.finish(msg);
                }
            }
            _ => {}
        }
    }

    /// The pull finished: finish every bar still open and the header.
    fn complete(&mut self, reference: &str, layer_count: usize, cached: bool) {
        for l in &mut self.layers {
            if l.phase != Phase::Done {
                // A fully cached image, a layer listed twice, or --no-index.
                let msg = match l.phase {
                    Phase::Waiting if cached => "cached".to_string(),
                    Phase::Waiting => "done (same content as another layer)".to_string(),
                    _ => l.summary(),
                };
                l.finish(msg);
            }
        }
        let how = if cached {
            "from cache".to_string()
        } else {
            let pulled = self.layers.iter().filter(|l| l.extracted).count();
            let reused = self.layers.iter().filter(|l| l.was_cached).count();
            format!("{pulled} pulled, {reused} already cached")
        };
        self.header.set_style(spinner_style());
        self.header
            .finish_with_message(format!("{reference}: {} ({how})", layers(layer_count)));
    }

    fn abandon(&mut self, reason: &str) {
        for l in &self.layers {
            if !l.bar.is_finished() {
                // A download bar keeps its bytes so one sees how far it got.
                if l.phase != Phase::Downloading {
                    l.bar.set_style(plain_style());
                }
                let msg = if l.extracted {
                    // Published in the cache (at most its lookup index is missing).
                    format!("extracted ({} entries)", l.entries)
                } else {
                    reason.to_string()
                };
                l.bar.abandon_with_message(msg);
            }
        }
        if !self.header.is_finished() {
            self.header.set_style(style("✘ {msg}"));
            let what = if self.reference.is_empty() {
                format!("pull {reason}")
            } else {
                format!("{}: pull {reason}", self.reference)
            };
            self.header.abandon_with_message(what);
        }
    }
}

impl LayerBar {
    /// Blob bytes arrived: the bar becomes a download bar on the first of them.
    fn downloading(&mut self, downloaded_bytes: u64, total_bytes: Option<u64>) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::Downloading;
            self.bar.set_style(download_style(total_bytes.is_some()));
            self.bar.set_message("downloading");
            if total_bytes.is_none() {
                self.bar.enable_steady_tick(TICK);
            }
        }
        if self.phase == Phase::Downloading {
            if let Some(total) = total_bytes {
                self.bar.set_length(total);
            }
            self.downloaded = downloaded_bytes;
            self.bar.set_position(downloaded_bytes);
        }
    }

    /// The blob is complete: the bar shows the extraction that goes on.
    fn downloaded(&mut self, downloaded_bytes: u64) {
        self.downloaded = downloaded_bytes;
        if matches!(self.phase, Phase::Waiting | Phase::Downloading) {
            self.phase = Phase::Extracting;
            self.bar.set_style(extract_style());
            self.bar.enable_steady_tick(TICK);
            self.show_extraction();
        }
    }

    /// The layer is extracted; with `indexing` the bar stays open for the index.
    fn extracted(&mut self, bytes_extracted: u64, entries: u64, indexing: bool) {
        self.bytes_extracted = bytes_extracted;
        self.entries = entries;
        self.extracted = true;
        if indexing {
            self.phase = Phase::Extracting;
            self.bar.set_style(extract_style());
            self.bar.enable_steady_tick(TICK);
            self.bar.set_message(format!(
                "extracted {}, {entries} entries",
                HumanBytes(bytes_extracted)
            ));
        } else {
            let msg = self.summary();
            self.finish(msg);
        }
    }

    fn set_digest(&mut self, digest: &Digest) {
        self.bar
            .set_prefix(format!("  {} {}", self.label, digest.short()));
    }

    fn show_extraction(&self) {
        self.bar.set_message(format!(
            "extracting {} → {}, {} entries",
            HumanBytes(self.downloaded),
            HumanBytes(self.bytes_extracted),
            self.entries
        ));
    }

    fn summary(&self) -> String {
        format!(
            "done ({} → {}, {} entries)",
            HumanBytes(self.downloaded),
            HumanBytes(self.bytes_extracted),
            self.entries
        )
    }

    fn finish(&mut self, msg: String) {
        self.phase = Phase::Done;
        self.bar.set_style(done_style());
        self.bar.finish_with_message(msg);
    }
}

/// A [`TermLike`] that writes ANSI escapes to stderr whatever it is (for `--progress tty`).
#[derive(Debug)]
struct AnsiStderr;

impl AnsiStderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }

    /// Move the cursor `n` cells in the direction of CSI code `dir` (`A` up … `D` left).
    fn cursor(&self, n: usize, dir: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}{dir}"))
    }
}

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Who holds a layer we wait for.
fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) if pid == std::process::id() => "another pull of this process".into(),
        Some(pid) => format!("the pull in process {pid}"),
        None => "another pull".into(),
    }
}

/// `retrying GET https://r/v2/…/blobs/sha256:… in 2.0 s (attempt 2/5): HTTP 503`, after the
/// layer's label when the request is for a layer's blob.
fn retrying(event: &PullProgress, layer_count: usize) -> Option<String> {
    let PullProgress::RequestRetrying { layer_index, .. } = event else {
        return None;
    };
    let layer = layer_index
        .map(|i| format!("{} ", layer_label(i, layer_count)))
        .unwrap_or_default();
    Some(format!("{layer}retrying {}", event.retry_summary()?))
}
