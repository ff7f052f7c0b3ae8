//! The msbimage half of the differential harness (`tests/differential/README.md`): make
//! layer tars (containerd's `TestBreakouts` table, or random hostile archives by seed),
//! have containerd's `archive.Apply` apply them (`tests/differential/oracle`, run as a
//! child process), extract them ourselves, and compare verdicts and, when both accept,
//! the canonical listings of the two trees.
//!
//! ```text
//! differential --oracle BIN [--mode naive|overlay|erofs] breakouts
//! differential --oracle BIN [--mode naive|overlay|erofs] seeds FIRST COUNT [--minutes M]
//!              [--keep DIR] [--max-entries N]
//! ```
//!
//! `erofs` mode (root): containerd in its overlay mode against our EROFS layer images, each
//! written in the extraction's pass as a pull with `erofs-layers` writes it, loop-mounted and
//! stacked by a read-only overlayfs, the merged mount listed as the oracle lists its own
//! (`erofs_mode.rs`).
//!
//! `seeds` checks archives `FIRST..FIRST+COUNT` (with `--minutes`, batch after batch from
//! FIRST until the time is up), prints one line per disagreement and a summary, copies the
//! tars of every unexplained disagreement to `--keep`, and exits 1 if there was any.

mod classify;
mod erofs_mode;
#[path = "../../tests/listing/mod.rs"]
mod listing;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use microsandbox_image::ExtractLimits;
use msbimage_testkit::breakout_cases;
use msbimage_testkit::tar_gen::{Profile, SplitMix64, generate};

/// What one side made of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Refused(String),
    Tree(Vec<String>),
}

struct Args {
    oracle: PathBuf,
    mode: String,
    command: Vec<String>,
    minutes: Option<u64>,
    keep: Option<PathBuf>,
    max_entries: u64,
    /// Also print every case both sides refused, with both reasons.
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        oracle: PathBuf::new(),
        mode: "naive".into(),
        command: Vec::new(),
        minutes: None,
        keep: None,
        max_entries: 12,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--oracle" => args.oracle = PathBuf::from(value()?),
            "--mode" => args.mode = value()?,
            "--minutes" => args.minutes = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--keep" => args.keep = Some(PathBuf::from(value()?)),
            "--verbose" => args.verbose = true,
            "--max-entries" => args.max_entries = value()?.parse().map_err(|e| format!("{e}"))?,
            _ => args.command.push(a),
        }
    }
    if args.oracle.as_os_str().is_empty() {
        return Err("--oracle BIN is required".into());
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("differential: {e}");
        std::process::exit(2)
    });
    let cmd: Vec<&str> = args.command.iter().map(String::as_str).collect();
    let code = match cmd.as_slice() {
        ["breakouts"] => breakouts(&args),
        ["seeds", first, count] => match (first.parse(), count.parse()) {
            (Ok(f), Ok(c)) => seeds(&args, f, c),
            _ => usage(),
        },
        _ => usage(),
    };
    std::process::exit(code)
}

fn usage() -> i32 {
    eprintln!(
        "usage: differential --oracle BIN [--mode naive|overlay|erofs] \
         breakouts|seeds FIRST COUNT"
    );
    2
}

/// The oracle's mode for ours: our EROFS images stack like containerd's overlay snapshots.
fn oracle_mode(mode: &str) -> &str {
    if mode == "erofs" { "overlay" } else { mode }
}

/// Limits for the comparison: containerd has none, so ours must not be what refuses.
fn limits() -> ExtractLimits {
    ExtractLimits::default()
}

fn ours(args: &Args, layers: &[Vec<u8>]) -> Verdict {
    if args.mode == "erofs" {
        return erofs_mode::ours(layers, limits());
    }
    match listing::extract_all(layers, limits()) {
        Err((n, e)) => Verdict::Refused(format!("layer {n}: {e}")),
        Ok(x) => {
            let fs: Vec<PathBuf> = (0..layers.len()).map(|n| x.fs(n)).collect();
            Verdict::Tree(listing::listing(&x.stack, &fs))
        }
    }
}

/// Write each case's layers to `<dir>/<name>/layer-N.tar`; returns the case directories.
fn write_cases(dir: &Path, cases: &[(String, Vec<Vec<u8>>)]) -> Vec<PathBuf> {
    cases
        .iter()
        .map(|(name, layers)| {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).expect("case dir");
            for (n, tar) in layers.iter().enumerate() {
                std::fs::write(d.join(format!("layer-{n}.tar")), tar).expect("write tar");
            }
            d
        })
        .collect()
}

/// What the oracle said about one case: its verdict and its notes.
#[derive(Debug, Clone)]
struct Oracle {
    verdict: Verdict,
    notes: Vec<String>,
}

/// Run the oracle on case directories; its answer per directory.
fn theirs(args: &Args, dirs: &[PathBuf]) -> BTreeMap<PathBuf, Oracle> {
    let out = Command::new(&args.oracle)
        .arg("-mode")
        .arg(oracle_mode(&args.mode))
        .args(dirs)
        .output()
        .expect("run the oracle");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_oracle(&String::from_utf8_lossy(&out.stdout))
}

fn parse_oracle(text: &str) -> BTreeMap<PathBuf, Oracle> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(head) = lines.next() {
        let Some(case) = head.strip_prefix("== ") else {
            continue;
        };
        let mut notes = Vec::new();
        while let Some(n) = lines.next_if(|l| l.starts_with("note ")) {
            notes.push(n[5..].to_string());
        }
        let refused = lines
            .next()
            .and_then(|l| l.strip_prefix("error: "))
            .map(str::to_string);
        let tree: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != "end")
            .map(str::to_string)
            .collect();
        let verdict = match refused {
            Some(e) => Verdict::Refused(e),
            None => Verdict::Tree(tree),
        };
        out.insert(PathBuf::from(case), Oracle { verdict, notes });
    }
    out
}

fn short(v: &Verdict) -> String {
    match v {
        Verdict::Refused(e) => format!("refused ({e})"),
        Verdict::Tree(t) => format!("accepted ({} entries)", t.len()),
    }
}

/// The `TestBreakouts` cases where msbimage and containerd's naive Apply (the mode the
/// table runs in) differ, on purpose: each layer is extracted on its own, as containerd's
/// overlayfs snapshotter applies it, so a layer cannot hardlink to, or write or delete
/// through a symlink of, a layer below. In overlay mode containerd agrees on every case.
const KEPT_NAIVE: [&str; 5] = [
    "SymlinkOverrideDirectory",
    "SymlinkOverrideDirectoryRelative",
    "DirectoryOverrideSymlink",
    "WhiteoutSymlinkPath",
    "WhiteoutDeadSymlinkParent",
];

fn breakouts(args: &Args) -> i32 {
    let work = tempfile::tempdir().expect("tempdir");
    let outside = work.path().join("outside");
    let cases: Vec<(String, Vec<Vec<u8>>)> = breakout_cases(&outside.to_string_lossy())
        .into_iter()
        .map(|c| (c.name.to_string(), c.layers))
        .collect();
    let dirs = write_cases(&work.path().join("cases"), &cases);
    let verdicts = theirs(args, &dirs);
    let kept: &[&str] = if args.mode == "naive" {
        &KEPT_NAIVE
    } else {
        &[]
    };
    let (mut differ, mut unexpected) = (0, 0);
    for ((name, layers), dir) in cases.iter().zip(&dirs) {
        let (ours, theirs) = (ours(args, layers), verdicts[dir].verdict.clone());
        let same = matches!((&ours, &theirs), (Verdict::Refused(_), Verdict::Refused(_)))
            || ours == theirs;
        let expected = same != kept.contains(&name.as_str());
        differ += usize::from(!same);
        unexpected += usize::from(!expected);
        println!(
            "{}{} {name}: containerd {} / msbimage {}",
            if same { "same" } else { "DIFF" },
            if expected { "" } else { " (UNEXPECTED)" },
            short(&theirs),
            short(&ours)
        );
        if let (false, Verdict::Tree(o), Verdict::Tree(t)) = (same, &ours, &theirs) {
            print_tree_diff(o, t);
        }
        if let Verdict::Tree(t) = &theirs {
            for l in t {
                println!("    {l}");
            }
        }
    }
    println!(
        "breakouts ({} mode): {} cases, {differ} differ ({} kept), {unexpected} unexpected",
        args.mode,
        cases.len(),
        kept.len()
    );
    i32::from(unexpected > 0)
}

fn print_tree_diff(ours: &[String], theirs: &[String]) {
    for l in theirs.iter().filter(|l| !ours.contains(l)) {
        println!("  containerd only: {l}");
    }
    for l in ours.iter().filter(|l| !theirs.contains(l)) {
        println!("  msbimage only:   {l}");
    }
}

/// Counts of a seed run.
#[derive(Default)]
struct Tally {
    cases: u64,
    both_refused: u64,
    same_tree: u64,
    /// Cases whose disagreement is of kept classes.
    kept_cases: u64,
    /// Those cases by class (a case may need several).
    kept: BTreeMap<classify::Class, u64>,
    disagree: u64,
}

fn seeds(args: &Args, first: u64, count: u64) -> i32 {
    let start = Instant::now();
    let deadline = args.minutes.map(|m| start + Duration::from_secs(m * 60));
    let mut tally = Tally::default();
    let mut next = first;
    loop {
        let n = if deadline.is_some() {
            200
        } else {
            count.min(first + count - next)
        };
        if n == 0 {
            break;
        }
        run_batch(args, next, n, &mut tally);
        next += n;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    println!(
        "seeds {first}..{next} ({} mode): {} cases in {:.0?}: {} both refused, {} same tree, \
         {} kept disagreements (by class {:?}), {} unexplained disagreements",
        args.mode,
        tally.cases,
        start.elapsed(),
        tally.both_refused,
        tally.same_tree,
        tally.kept_cases,
        tally.kept,
        tally.disagree
    );
    i32::from(tally.disagree > 0)
}

fn run_batch(args: &Args, first: u64, n: u64, tally: &mut Tally) {
    let profile = Profile {
        max_entries: args.max_entries,
        ..Profile::default()
    };
    let work = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(String, Vec<Vec<u8>>)> = (first..first + n)
        .map(|seed| {
            (
                seed.to_string(),
                vec![generate(&mut SplitMix64(seed), &profile)],
            )
        })
        .collect();
    let dirs = write_cases(work.path(), &cases);
    let verdicts = theirs(args, &dirs);
    for ((seed, layers), dir) in cases.iter().zip(&dirs) {
        tally.cases += 1;
        let oracle = &verdicts[dir];
        let (ours, theirs) = (ours(args, layers), &oracle.verdict);
        match (&ours, theirs) {
            (Verdict::Refused(o), Verdict::Refused(t)) => {
                tally.both_refused += 1;
                if args.verbose {
                    println!("both refused seed {seed}: containerd {t} / msbimage {o}");
                }
            }
            (o, t) if o == t => tally.same_tree += 1,
            _ => match explain(&layers[0], &ours, oracle) {
                Some(classes) => {
                    println!("kept seed {seed}: {classes:?}");
                    tally.kept_cases += 1;
                    for c in classes {
                        *tally.kept.entry(c).or_default() += 1;
                    }
                }
                None => {
                    tally.disagree += 1;
                    report(args, seed, dir, &ours, theirs);
                }
            },
        }
    }
}

/// The kept classes a disagreement falls in, if it is one of those.
fn explain(tar: &[u8], ours: &Verdict, oracle: &Oracle) -> Option<Vec<classify::Class>> {
    let tree = |v: &Verdict| match v {
        Verdict::Tree(t) => Some(t.clone()),
        Verdict::Refused(_) => None,
    };
    let error = match &oracle.verdict {
        Verdict::Refused(e) => Some(e.as_str()),
        Verdict::Tree(_) => None,
    };
    let candidates = classify::candidates(&oracle.notes, tar);
    let (o, t) = (tree(ours), tree(&oracle.verdict));
    classify::explain(&candidates, o.as_deref(), t.as_deref(), error)
}

fn report(args: &Args, seed: &str, dir: &Path, ours: &Verdict, theirs: &Verdict) {
    println!(
        "DISAGREE seed {seed}: containerd {} / msbimage {}",
        short(theirs),
        short(ours)
    );
    if let (Verdict::Tree(o), Verdict::Tree(t)) = (ours, theirs) {
        print_tree_diff(o, t);
    }
    if let Some(keep) = &args.keep {
        let to = keep.join(seed);
        std::fs::create_dir_all(&to).expect("keep dir");
        for e in std::fs::read_dir(dir).expect("case dir").flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("keep tar");
        }
    }
}
