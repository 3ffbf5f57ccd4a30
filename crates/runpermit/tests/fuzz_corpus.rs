//! Replays the fuzz corpora and every crash the fuzzers found, on stable Rust under plain
//! `cargo test`.
//!
//! The fuzz targets' bodies are `fuzz/src/lib.rs`, included here as a module, so that
//! `cargo +nightly fuzz run <target>` (see `fuzz/README.md`) and this test run the same code.
//! Every file of `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (crashes found, kept
//! as regression inputs) goes through its target; a panic is a failure naming the file.
//! This crate's test is where they live because it is the one that depends on every crate
//! with a parser.

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use targets::{TARGETS, seeds};

/// Set to rewrite the signed seeds in `fuzz/corpus/` after a format or key change.
const BLESS: &str = "RUNPERMIT_FUZZ_BLESS";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files in `dir` (not hidden ones), sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// The names in `dir` that are directories (or files ending in `suffix`, without it).
fn names(dir: &Path, suffix: Option<&str>) -> BTreeSet<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    read.map(|e| e.expect("a directory entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            match suffix {
                None => p.is_dir().then_some(name),
                Some(s) => name.strip_suffix(s).map(str::to_owned),
            }
        })
        .collect()
}

/// Runs one input through its target: whether it was accepted, or the panic's message.
fn run(target: targets::Target, bytes: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| target(bytes))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(a panic without a message)".to_owned())
    })
}

#[test]
fn every_corpus_input_and_every_kept_crash_replays_without_a_panic() {
    let fuzz = fuzz_dir();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for &(name, target) in TARGETS {
        let corpus = files(&fuzz.join("corpus").join(name));
        if corpus.is_empty() {
            failures.push(format!(
                "fuzz/corpus/{name}/ is missing or empty: every target starts from seeds"
            ));
        }
        let mut accepted = 0;
        let artifacts = files(&fuzz.join("artifacts").join(name));
        for path in corpus.iter().chain(&artifacts) {
            let bytes = std::fs::read(path).expect("a readable input");
            replayed += 1;
            match run(target, &bytes) {
                Ok(true) if corpus.contains(path) => accepted += 1,
                Ok(_) => {}
                Err(message) => failures.push(format!("{}: panicked: {message}", path.display())),
            }
        }
        println!(
            "{name}: {} corpus inputs ({accepted} accepted), {} kept crashes",
            corpus.len(),
            artifacts.len()
        );
        if !corpus.is_empty() && accepted == 0 {
            failures.push(format!(
                "fuzz/corpus/{name}/: no input is accepted any more, so fuzzing would never reach \
                 past the parser's first error; add a valid input (or rewrite the signed seeds \
                 with {BLESS}=1)"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "replayed {replayed} inputs through {} fuzz targets",
        TARGETS.len()
    );
}

#[test]
fn the_targets_the_fuzz_package_builds_are_the_targets_replayed() {
    let fuzz = fuzz_dir();
    let listed: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(listed.len(), TARGETS.len(), "a target is listed twice");
    assert_eq!(
        names(&fuzz.join("fuzz_targets"), Some(".rs")),
        listed,
        "fuzz/fuzz_targets/*.rs and TARGETS in fuzz/src/lib.rs differ"
    );
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &listed {
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"\n"
            )),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let source = std::fs::read_to_string(fuzz.join(format!("fuzz_targets/{name}.rs")))
            .expect("a target source");
        assert!(
            source.contains(&format!("runpermit_fuzz::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call runpermit_fuzz::{name}"
        );
    }
    for dir in ["corpus", "artifacts"] {
        let stray: Vec<String> = names(&fuzz.join(dir), None)
            .difference(&listed)
            .cloned()
            .collect();
        assert!(stray.is_empty(), "fuzz/{dir}/ has no target for {stray:?}");
    }
}

#[test]
fn the_signed_seeds_in_the_corpus_are_current() {
    let corpus = fuzz_dir().join("corpus");
    let bless = std::env::var_os(BLESS).is_some();
    let mut stale = Vec::new();
    for (target, name, bytes) in seeds() {
        let path = corpus.join(target).join(name);
        if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).expect("creates the corpus");
            std::fs::write(&path, &bytes).expect("writes the seed");
        } else {
            stale.push(format!("fuzz/corpus/{target}/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "these seeds differ from what fuzz/src/lib.rs signs now (a format or key changed): {}; \
         rewrite them with {BLESS}=1 cargo test -p runpermit --test fuzz_corpus",
        stale.join(", ")
    );
}
