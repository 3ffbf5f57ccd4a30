//! How long `Gate::decide` takes, in process, on one core: for an allowed job (every check runs:
//! permit signature, scope, proof bundle with its checkpoint signature and inclusion path,
//! status list, budget), for a small job (the threshold only), and the two signature checks
//! on their own, which dominate.
//!
//! Run: `cargo run --release -p runpermit-gate --example decide_bench`. It prints figures and
//! asserts nothing about time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{NOW, World};
use runpermit_gate::{Code, JobRequest, Usage};
use runpermit_log::ProofBundle;
use runpermit_permit::verify_permit;

/// Runs `f` `n` times after a warm-up; returns each call's duration, sorted.
fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f();
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    samples
}

fn report(what: &str, samples: &[Duration]) {
    let total: Duration = samples.iter().sum();
    let mean = total.as_secs_f64() / samples.len() as f64;
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{what:<44} mean {:>8.2} µs   p50 {:>8.2} µs   p99 {:>8.2} µs   {:>10.0} /s",
        mean * 1e6,
        at(0.50),
        at(0.99),
        1.0 / mean
    );
}

fn main() {
    let world = World::new();
    let usage: Usage = [("run_main", runpermit_compute::Flop::new(5e24).unwrap())]
        .into_iter()
        .collect();
    let allowed = world.allowed_job();
    let small = JobRequest {
        accelerators: 8,
        hours: Some(10.0),
        permit: None,
        ..allowed.clone()
    };
    let gate = world.gate.borrow().clone();
    let run = |job: &JobRequest| gate.decide_uncached(job, &usage, NOW);
    assert_eq!(run(&allowed).code, Code::Permitted);
    assert_eq!(run(&small).code, Code::BelowThreshold);

    const N: usize = 20_000;
    println!("Gate::decide_uncached, in process, one core, {N} calls each:");
    report(
        "allowed job (all checks)",
        &time(N, || {
            black_box(run(black_box(&allowed)));
        }),
    );
    let mut cached = gate.clone();
    report(
        "allowed job, evidence cached (Gate::decide)",
        &time(N, || {
            black_box(cached.decide(black_box(&allowed), &usage, NOW));
        }),
    );
    report(
        "small job (threshold only)",
        &time(N, || {
            black_box(run(black_box(&small)));
        }),
    );
    report(
        "  of which: permit signature (verify_permit)",
        &time(N, || {
            black_box(verify_permit(&world.main.token, &world.jwks, NOW, 60).unwrap());
        }),
    );
    report(
        "  of which: log proof (parse + verify_entry)",
        &time(N, || {
            let bundle = ProofBundle::parse(&world.main.proof).unwrap();
            black_box(bundle.verify_entry(&world.vkey).unwrap());
        }),
    );
}
