// Command verify checks a runpermit transparency log written to a directory with an
// implementation nobody on the project wrote: Go's golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog (Debian's golang-golang-x-mod-dev).
//
// Usage (GOPATH mode, as tests/go_interop.rs runs it):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go run verify.go DIR
//
// DIR holds the log in the C2SP tlog-tiles layout (checkpoint, tile/<L>/<N>[.p/<W>],
// tile/entries/<N>[.p/<W>]), the verifier key in vkey, inclusion proofs in the C2SP
// tlog-proof format in proofs/*.tlog-proof, and consistency proofs in consistency/<name>/
// (old and new: signed checkpoints; proof: one base64 hash per line).
//
// It prints one line per check: "ok <what>" or "rejected <what>: <why>". Proofs whose file
// name starts with "bad-" are expected to be rejected; the Rust test reads the lines.
// tlog.ParseTree expects the Go checksum database's header line, so the three-line C2SP
// checkpoint body is parsed here.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: verify DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	vkey, err := os.ReadFile(filepath.Join(dir, "vkey"))
	must(err)
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	must(err)

	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	must(err)
	tree, err := openCheckpoint(msg, verifier)
	if err != nil {
		fmt.Printf("rejected checkpoint: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ok checkpoint %d %s\n", tree.N, tree.Hash)

	// The tiles, authenticated against the checkpoint by Go's own tile reader.
	hashes := tlog.TileHashReader(tree, dirTiles{dir})
	root, err := tlog.TreeHash(tree.N, hashes)
	if err != nil || root != tree.Hash {
		fmt.Printf("rejected tiles: root %v, %v\n", root, err)
	} else {
		fmt.Printf("ok tiles\n")
	}

	// Every entry in the bundles hashes to its leaf.
	if err := checkEntries(dir, tree, hashes); err != nil {
		fmt.Printf("rejected entries: %v\n", err)
	} else {
		fmt.Printf("ok entries %d\n", tree.N)
	}

	// Inclusion proofs.
	names, _ := filepath.Glob(filepath.Join(dir, "proofs", "*.tlog-proof"))
	sort.Strings(names)
	for _, name := range names {
		what := "proof " + filepath.Base(name)
		if err := checkProof(name, verifier, tree, hashes); err != nil {
			fmt.Printf("rejected %s: %v\n", what, err)
		} else {
			fmt.Printf("ok %s\n", what)
		}
	}

	// Consistency proofs.
	dirs, _ := filepath.Glob(filepath.Join(dir, "consistency", "*"))
	sort.Strings(dirs)
	for _, d := range dirs {
		what := "consistency " + filepath.Base(d)
		if err := checkConsistency(d, verifier, tree, hashes); err != nil {
			fmt.Printf("rejected %s: %v\n", what, err)
		} else {
			fmt.Printf("ok %s\n", what)
		}
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		os.Exit(2)
	}
}

// openCheckpoint verifies the note's signature by the pinned key and parses the C2SP
// body: origin (the key's name), tree size, base64 root hash.
func openCheckpoint(msg []byte, v note.Verifier) (tlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return tlog.Tree{}, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return tlog.Tree{}, errors.New("checkpoint body is not three lines")
	}
	if lines[0] != v.Name() {
		return tlog.Tree{}, fmt.Errorf("origin %q is not the key name %q", lines[0], v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, fmt.Errorf("bad tree size %q", lines[1])
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return tlog.Tree{}, err
	}
	return tlog.Tree{N: size, Hash: h}, nil
}

// dirTiles reads tiles from the C2SP layout; tlog.Tile.Path gives the Go checksum
// database form tile/8/<L>/<N> (tile/8/data/<N> for entries), so the height is dropped.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return height }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func c2spPath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if strings.HasPrefix(rest, "data/") {
		return "tile/entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

func checkEntries(dir string, tree tlog.Tree, hashes tlog.HashReader) error {
	for start := int64(0); start < tree.N; start += 1 << height {
		w := tree.N - start
		if w > 1<<height {
			w = 1 << height
		}
		t := tlog.Tile{H: height, L: -1, N: start >> height, W: int(w)}
		data, err := os.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			return err
		}
		var indexes []int64
		var records [][]byte
		for len(data) > 0 {
			if len(data) < 2 {
				return fmt.Errorf("bundle %d: truncated length", t.N)
			}
			n := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+n {
				return fmt.Errorf("bundle %d: truncated entry", t.N)
			}
			records = append(records, data[2:2+n])
			indexes = append(indexes, tlog.StoredHashIndex(0, start+int64(len(indexes))))
			data = data[2+n:]
		}
		if int64(len(records)) != w {
			return fmt.Errorf("bundle %d holds %d entries, want %d", t.N, len(records), w)
		}
		leaves, err := hashes.ReadHashes(indexes)
		if err != nil {
			return err
		}
		for i, r := range records {
			if tlog.RecordHash(r) != leaves[i] {
				return fmt.Errorf("entry %d does not hash to its leaf", start+int64(i))
			}
		}
	}
	return nil
}

// checkProof reads a c2sp.org/tlog-proof@v1 file: header, "extra <base64 entry>",
// "index <n>", proof hashes, an empty line, the checkpoint note.
func checkProof(name string, v note.Verifier, latest tlog.Tree, hashes tlog.HashReader) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	head, msg, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if len(lines) < 3 || lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "extra ") {
		return errors.New("not a tlog-proof with an entry")
	}
	entry, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(lines[2], "index ") {
		return errors.New("no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[2], "index "), 10, 64)
	if err != nil {
		return err
	}
	var proof tlog.RecordProof
	for _, l := range lines[3:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return err
		}
		proof = append(proof, h)
	}
	tree, err := openCheckpoint([]byte(msg), v)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
		return err
	}
	// Go computes the same proof from the tiles.
	if tree == latest {
		own, err := tlog.ProveRecord(tree.N, index, hashes)
		if err != nil {
			return err
		}
		if !sameHashes(own, proof) {
			return errors.New("valid, but not the proof Go computes from the tiles")
		}
	}
	return nil
}

func checkConsistency(d string, v note.Verifier, latest tlog.Tree, hashes tlog.HashReader) error {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(d, name)) }
	oldMsg, err := read("old")
	if err != nil {
		return err
	}
	newMsg, err := read("new")
	if err != nil {
		return err
	}
	proofText, err := read("proof")
	if err != nil {
		return err
	}
	old, err := openCheckpoint(oldMsg, v)
	if err != nil {
		return fmt.Errorf("old checkpoint: %v", err)
	}
	cur, err := openCheckpoint(newMsg, v)
	if err != nil {
		return fmt.Errorf("new checkpoint: %v", err)
	}
	var proof tlog.TreeProof
	for _, l := range strings.Fields(string(proofText)) {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return err
		}
		proof = append(proof, h)
	}
	if err := tlog.CheckTree(proof, cur.N, cur.Hash, old.N, old.Hash); err != nil {
		return err
	}
	if cur == latest {
		own, err := tlog.ProveTree(cur.N, old.N, hashes)
		if err != nil {
			return err
		}
		if !sameHashes(own, proof) {
			return errors.New("valid, but not the proof Go computes from the tiles")
		}
	}
	return nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i][:], b[i][:]) {
			return false
		}
	}
	return true
}
