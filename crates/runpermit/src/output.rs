//! Where the CLI's output goes, and how a failure is told: as text, or with `--json` as one
//! JSON object on stderr, with the exit status it always has.
//!
//! stdout carries results only: with `--json`, a script reading stdout never mistakes an
//! error for a result, and the exit status says which it got.

use std::fmt;
use std::io::{self, Write as _};
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::args::ArgError;
use crate::client::{ApiFailure, Unreachable};

/// The exit status of a command whose stdout was closed before it finished
/// (`runpermit … | head -1`): 128 + SIGPIPE, what a shell reports for a tool that SIGPIPE
/// stopped.
pub const STDOUT_CLOSED: u8 = 141;

/// Writes to stdout for the crate's `println!` and `print!`. A closed stdout ends the process
/// quietly with [`STDOUT_CLOSED`], as SIGPIPE ends other tools (Rust ignores SIGPIPE, and
/// the standard `println!` panics instead); any other write failure ends it with status 1.
pub fn stdout(args: fmt::Arguments<'_>) {
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Flushes stdout before the process exits, with [`stdout`]'s handling of a closed pipe.
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        stdout_failed(&e);
    }
}

fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(STDOUT_CLOSED));
    }
    stderr(format_args!("error: writing to stdout: {e}\n"));
    std::process::exit(1);
}

/// Writes to stderr for the crate's `eprintln!`. A closed stderr is ignored: there is nowhere
/// left to say anything, and the exit status still tells the outcome.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an answer of the authority (a `runpermit_api` type) as pretty JSON on stdout, its
/// keys in the order `print_json` writes them (sorted), so `--json` shows each body the same
/// way whichever type carried it.
pub fn print_answer<T: serde::Serialize + ?Sized>(answer: &T) -> anyhow::Result<()> {
    print_json(&serde_json::to_value(answer)?)
}

/// Whether the command line asks for JSON: a `--json` before any `--`. Read from the raw
/// arguments so that errors clap finds while parsing are JSON too.
pub fn wants_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// What kind of failure `err` is, and the exit status it maps to.
enum Kind<'a> {
    /// The command line is wrong: exit 2.
    Args(&'a ArgError),
    /// The authority answered with an error.
    Api(&'a ApiFailure),
    /// The authority (or another server) could not be reached.
    Unreachable(&'a Unreachable),
    /// Anything else: exit 1.
    Failed,
}

fn kind(err: &anyhow::Error) -> Kind<'_> {
    if let Some(e) = err.downcast_ref::<ArgError>() {
        Kind::Args(e)
    } else if let Some(e) = err.downcast_ref::<ApiFailure>() {
        Kind::Api(e)
    } else if let Some(e) = err.downcast_ref::<Unreachable>() {
        Kind::Unreachable(e)
    } else {
        Kind::Failed
    }
}

/// `err` and its causes, each said once: a cause whose text its wrapper already carries
/// (`database: X` caused by `X`) is left out. One line, causes joined by `: `.
pub fn message(err: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if said.last().is_some_and(|outer| outer.contains(&text)) {
            continue;
        }
        said.push(text);
    }
    said.join(": ")
}

/// Tells `err` on stderr (text, or one JSON object with `json`) and returns its exit status:
/// 2 for a wrong command line, else 1.
pub fn fail(err: &anyhow::Error, json: bool) -> ExitCode {
    let kind = kind(err);
    let status = match kind {
        Kind::Args(_) => 2,
        _ => 1,
    };
    if json {
        let object = match kind {
            Kind::Args(e) => json!({"error": "usage", "message": e.0}),
            Kind::Api(e) => {
                let mut object = json!({
                    "error": e.code,
                    "status": e.status,
                    "message": e.message,
                    "errors": e.errors,
                });
                if !e.url.is_empty() {
                    object["url"] = json!(e.url);
                }
                object
            }
            Kind::Unreachable(e) => {
                json!({"error": "unreachable", "message": message(err), "url": e.url})
            }
            Kind::Failed => json!({"error": "failed", "message": message(err)}),
        };
        eprintln!("{object}");
    } else {
        match kind {
            Kind::Args(e) => eprintln!("error: {e}"),
            _ => eprintln!("error: {}", message(err)),
        }
    }
    ExitCode::from(status)
}

/// A usage error clap found while parsing, as one JSON object on stderr; exit status 2.
pub fn fail_parse_json(err: &clap::Error) -> ExitCode {
    let rendered = err.to_string();
    // clap's text: "error: …", then a blank line and the usage; the first part is the message.
    let first = rendered.split("\n\n").next().unwrap_or(&rendered);
    let message = first.trim().trim_start_matches("error: ");
    eprintln!("{}", json!({"error": "usage", "message": message}));
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        #[derive(Debug)]
        struct Wrapper(anyhow::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "database: {}", self.0)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(self.0.as_ref())
            }
        }
        let inner = anyhow::anyhow!("database \"x\" does not exist");
        let err = anyhow::Error::new(Wrapper(inner)).context("preparing the authority");
        assert_eq!(
            message(&err),
            "preparing the authority: database: database \"x\" does not exist"
        );
        let plain = anyhow::anyhow!("refused").context("GET /v1/runs");
        assert_eq!(message(&plain), "GET /v1/runs: refused");
    }

    #[test]
    fn json_is_asked_before_the_end_of_flags() {
        let args = |list: &[&str]| {
            list.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        assert!(wants_json(args(&["runpermit", "whoami", "--json"])));
        assert!(!wants_json(args(&["runpermit", "whoami"])));
        assert!(!wants_json(args(&["runpermit", "x", "--", "--json"])));
        assert!(
            !wants_json(args(&["--json"])),
            "the program name is not a flag"
        );
    }
}
