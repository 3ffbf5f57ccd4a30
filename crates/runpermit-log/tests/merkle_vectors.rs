//! The transparency-dev Merkle test vectors (github.com/transparency-dev/merkle, Apache-2.0;
//! see `tests/data/transparency-dev-merkle/README.md`): every inclusion and consistency
//! vector must verify or fail exactly as the vector says, and the tree hashes of its 8-leaf
//! reference tree (`testonly/constants.go`) must come out of both `tree_hash` and the
//! incremental `append`.

use runpermit_log::{
    Hash, append, consistency_proof, inclusion_proof, leaf_hash, root, tree_hash,
    verify_consistency, verify_inclusion,
};
use serde_json::Value;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/transparency-dev-merkle"
);

/// `testonly/constants.go`: `LeafInputs()` (hex).
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `testonly/constants.go`: `RootHashes()` for sizes 0..=8 (hex).
const ROOT_HASHES: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{DATA}/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A vector's hash, or `None` when it is not 32 bytes of base64. The vectors use such
/// values (`""`, `"V3JvbmdMZWFm"`) to test that wrong-length hashes are refused; our `Hash`
/// type cannot hold them, so those vectors are refused before verification (and must be
/// `wantErr`). Of 98 vectors each, 72 inclusion and 71 consistency vectors run.
fn hash(v: &Value) -> Option<Hash> {
    v.as_str().and_then(|s| Hash::from_base64(s).ok())
}

fn proof(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        _ => panic!("proof is {v}"),
    }
}

#[test]
fn reference_tree_roots() {
    let leaves: Vec<Hash> = LEAF_INPUTS.iter().map(|h| leaf_hash(&hex(h))).collect();
    let mut stored = Vec::new();
    for (size, want) in ROOT_HASHES.iter().enumerate() {
        let want = Hash(hex(want).try_into().unwrap());
        assert_eq!(tree_hash(&leaves[..size]), want, "size {size}");
        if size > 0 {
            let a = append(size as u64 - 1, &leaves[size - 1..size], &stored).unwrap();
            stored.extend(a.hashes);
            assert_eq!(a.root, want, "size {size}");
        }
        assert_eq!(root(size as u64, &stored).unwrap(), want, "size {size}");
    }
}

#[test]
fn inclusion_vectors() {
    let (mut checked, mut unrepresentable) = (0, Vec::new());
    for v in load("inclusion") {
        let source = v["source"].as_str().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let index = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        let (Some(leaf), Some(root), Some(proof)) =
            (hash(&v["leafHash"]), hash(&v["root"]), proof(&v["proof"]))
        else {
            if !want_err {
                unrepresentable.push(source.to_owned());
            }
            continue;
        };
        let got = verify_inclusion(&leaf, index, size, &proof, &root);
        assert_eq!(got.is_err(), want_err, "{source}: {got:?}");
        checked += 1;
    }
    assert!(unrepresentable.is_empty(), "{unrepresentable:?}");
    assert!(checked >= 70, "only {checked} vectors checked");
}

#[test]
fn consistency_vectors() {
    let (mut checked, mut unrepresentable) = (0, Vec::new());
    for v in load("consistency") {
        let source = v["source"].as_str().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let size1 = v["size1"].as_u64().unwrap();
        let size2 = v["size2"].as_u64().unwrap();
        let (Some(root1), Some(root2), Some(proof)) =
            (hash(&v["root1"]), hash(&v["root2"]), proof(&v["proof"]))
        else {
            if !want_err {
                unrepresentable.push(source.to_owned());
            }
            continue;
        };
        let got = verify_consistency(size1, size2, &root1, &root2, &proof);
        assert_eq!(got.is_err(), want_err, "{source}: {got:?}");
        checked += 1;
    }
    // One happy-path vector uses a placeholder 9-byte "root" for two equal trees of size
    // 1 (it only checks that equal sizes with equal roots and no proof pass); a 32-byte
    // hash type cannot hold it.
    assert_eq!(
        unrepresentable,
        ["testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"]
    );
    assert!(checked >= 70, "only {checked} vectors checked");
}

#[test]
fn the_happy_path_proofs_are_the_ones_we_generate() {
    let leaves: Vec<Hash> = LEAF_INPUTS.iter().map(|h| leaf_hash(&hex(h))).collect();
    let mut stored = Vec::new();
    stored.extend(append(0, &leaves, &stored).unwrap().hashes);
    let mut compared = 0;
    for v in load("inclusion") {
        if !v["source"].as_str().unwrap().ends_with("/happy-path.json") {
            continue;
        }
        let index = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        assert_eq!(
            inclusion_proof(index, size, &stored).unwrap(),
            proof(&v["proof"]).unwrap()
        );
        compared += 1;
    }
    for v in load("consistency") {
        if !v["source"].as_str().unwrap().ends_with("/happy-path.json") {
            continue;
        }
        let size1 = v["size1"].as_u64().unwrap();
        let size2 = v["size2"].as_u64().unwrap();
        assert_eq!(
            consistency_proof(size1, size2, &stored).unwrap(),
            proof(&v["proof"]).unwrap()
        );
        compared += 1;
    }
    assert!(compared >= 8, "{compared}");
}
