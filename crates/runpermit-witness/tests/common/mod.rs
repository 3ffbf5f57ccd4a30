//! A real growing log (RFC 6962 tree, signed checkpoints, real consistency proofs) and an
//! in-process witness on a loopback port, for the HTTP tests.

#![allow(dead_code)]

use std::sync::Arc;

use runpermit_log::{
    Checkpoint, CosignerKey, EMPTY_ROOT, Hash, LogKey, VerifierKey, append, consistency_proof,
    leaf_hash, sign_checkpoint,
};
use runpermit_witness::{Clock, Store, TrustedLogs, Witness};

pub const WITNESS: &str = "witness.example/w1";
pub const NOW: u64 = 1_767_225_600;

/// A fixed clock.
#[derive(Debug)]
pub struct Fixed(pub u64);

impl Clock for Fixed {
    fn now_unix(&self) -> u64 {
        self.0
    }
}

/// A log: its key and stored hashes.
pub struct TestLog {
    pub key: LogKey,
    pub stored: Vec<Hash>,
    pub size: u64,
    pub root: Hash,
    seed: u8,
    tag: String,
}

impl TestLog {
    pub fn new(origin: &str, seed: u8) -> TestLog {
        TestLog {
            key: LogKey::from_seed(origin, &[seed; 32]).unwrap(),
            stored: Vec::new(),
            size: 0,
            root: EMPTY_ROOT,
            seed,
            tag: String::new(),
        }
    }

    /// The same log key (seed `seed`), with entries that differ from [`TestLog::new`]'s
    /// by `tag`: a fork of that log.
    pub fn fork(origin: &str, seed: u8, tag: &str) -> TestLog {
        TestLog {
            tag: tag.to_owned(),
            ..TestLog::new(origin, seed)
        }
    }

    /// This log as it is now, growing from here with entries tagged `tag`: with another tag,
    /// a fork that shares the entries so far.
    pub fn branch(&self, tag: &str) -> TestLog {
        TestLog {
            key: LogKey::from_seed(self.key.name(), &[self.seed; 32]).unwrap(),
            stored: self.stored.clone(),
            size: self.size,
            root: self.root,
            seed: self.seed,
            tag: tag.to_owned(),
        }
    }

    pub fn vkey(&self) -> String {
        self.key.verifier_key()
    }

    pub fn grow(&mut self, n: u64) {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| leaf_hash(format!("{}entry {}", self.tag, self.size + i).as_bytes()))
            .collect();
        let a = append(self.size, &leaves, &self.stored).unwrap();
        self.stored.extend(a.hashes);
        (self.size, self.root) = (a.size, a.root);
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: self.key.name().to_owned(),
            size: self.size,
            root_hash: self.root,
        }
    }

    pub fn note(&self) -> String {
        sign_checkpoint(&self.checkpoint(), &self.key).unwrap()
    }

    /// The add-checkpoint body from `old` (a real proof, empty from 0).
    pub fn request(&self, old: u64) -> String {
        let proof = if old == 0 {
            Vec::new()
        } else {
            consistency_proof(old, self.size, &self.stored).unwrap()
        };
        let lines: String = proof.iter().map(|h| format!("{h}\n")).collect();
        format!("old {old}\n{lines}\n{}", self.note())
    }
}

pub fn witness_key() -> CosignerKey {
    CosignerKey::from_seed(WITNESS, &[9; 32]).unwrap()
}

/// A witness for `vkeys` on a database in `dir`, served on a loopback port from a runtime
/// of its own; returns its base URL. The runtime lives as long as the test process.
pub fn start(dir: &std::path::Path, vkeys: &[String]) -> String {
    start_on(dir.join("witness.db"), vkeys)
}

/// As [`start`], on the database file `db` (two witnesses on one file act as two processes).
pub fn start_on(db: std::path::PathBuf, vkeys: &[String]) -> String {
    let logs = TrustedLogs::new(vkeys.iter().map(|v| VerifierKey::parse(v).unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let store = Store::open(&db).await.unwrap();
            let witness = Arc::new(Witness::new(
                witness_key(),
                logs,
                store,
                Arc::new(Fixed(NOW)),
            ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            runpermit_witness::serve(witness, listener, std::future::pending())
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// POST /add-checkpoint: status, content type, body.
pub fn add(agent: &ureq::Agent, base: &str, body: &str) -> (u16, String, String) {
    let mut response = agent
        .post(format!("{base}/add-checkpoint"))
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.body_mut().read_to_string().unwrap(),
    )
}

pub fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}
