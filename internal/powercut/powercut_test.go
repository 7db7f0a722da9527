package powercut

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mqttas/mqttas-go/mqttas"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A cut drops what no fsync covered (appends, overwrites, truncations), keeps what one did, and follows a
// renamed file; a run that ends without a cut keeps everything.
func TestRollback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	journal := Journal(dir)
	fs, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.OpenFile(filepath.Join(dir, "..", "elsewhere"), true); !errors.Is(err, ErrOutside) {
		t.Fatalf("a file outside the store: %v", err)
	}
	a := filepath.Join(dir, "a")
	f, err := fs.OpenFile(a, true)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.WriteAt([]byte("synced"), 0)
	must(err)
	must(f.Sync())
	if fi, _ := os.Stat(journal); fi.Size() != 0 {
		t.Fatalf("journal of %d bytes with nothing unsynced", fi.Size())
	}
	_, err = f.WriteAt([]byte("XY"), 1) // over synced bytes
	must(err)
	_, err = f.WriteAt([]byte(" and not"), 6) // past them
	must(err)
	must(f.Truncate(4)) // cuts synced bytes
	_, err = f.WriteAt([]byte("ZZZZ"), 4)
	must(err)
	b := filepath.Join(dir, "b")
	must(fs.Rename(a, b))
	_, err = f.WriteAt([]byte("!"), 8)
	must(err)
	if got := readFile(t, b); got != "sXYcZZZZ!" {
		t.Fatalf("before the cut the writes are there (a process crash keeps them): %q", got)
	}
	// The process dies here; the cut:
	u, err := Rollback(dir)
	must(err)
	if got := readFile(t, b); got != "synced" {
		t.Fatalf("after the cut: %q (undone %+v)", got, u)
	}
	if u.Writes != 5 || u.Bytes != 3 {
		t.Fatalf("undone %+v, want 5 writes, 3 bytes cut", u)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left: %v", err)
	}
	must(f.Close())
	must(fs.Close())
	// Nothing to undo: no journal.
	if u, err := Rollback(dir); err != nil || u != (Undone{}) {
		t.Fatalf("%+v %v", u, err)
	}
}

// A torn last line is a write that never began; damage before the last line is an error.
func TestRollbackTornJournal(t *testing.T) {
	dir := t.TempDir()
	journal := Journal(dir)
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `{"op":"w","path":"` + a + `","synced":4,"off":4}` + "\n"
	if err := os.WriteFile(journal, []byte(good+`{"op":"w","pa`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Rollback(dir); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, a); got != "abcd" {
		t.Fatalf("%q", got)
	}
	for _, bad := range []string{
		`{"op":` + "\n" + good, // damage before the last line
		`{"op":"w","path":"/etc/passwd","synced":0,"off":0}` + "\n",   // outside the store
		`{"op":"w","path":"` + a + `","synced":99999,"off":0}` + "\n", // more than the file ever held
		`{"op":"w","path":"` + a + `","synced":1,"off":0,"old":"YWJj"}` + "\n",
		`{"op":"zap","path":"` + a + `"}` + "\n",
	} {
		if err := os.WriteFile(journal, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Rollback(dir); err == nil {
			t.Fatalf("rolled back %q", bad)
		}
	}
	if got := readFile(t, a); got != "abcd" {
		t.Fatalf("a refused journal changed the file: %q", got)
	}
}

// Rollback reads a journal that may be torn or damaged: it never panics, never touches a file outside the
// store, and never grows a file beyond what it held.
func FuzzRollback(f *testing.F) {
	f.Add([]byte(`{"op":"w","path":"STORE/a","synced":4,"off":2,"old":"Y2Q="}` + "\n" + `{"op":"s","path":"STORE/a"}`))
	f.Add([]byte(`{"op":"t","path":"STORE/a","synced":6,"off":1,"old":"YmNkZWY="}` + "\n" + `{"op":"r","path":"STORE/a","to":"STORE/b"}`))
	f.Add([]byte(`{"op":"rm","path":"STORE/a"}` + "\n" + `{"op":"w","pa`))
	f.Fuzz(func(t *testing.T, journal []byte) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a")
		if err := os.WriteFile(a, []byte("abcdef"), 0o600); err != nil {
			t.Fatal(err)
		}
		j := bytes.ReplaceAll(journal, []byte("STORE"), []byte(dir))
		if err := os.WriteFile(Journal(dir), j, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = Rollback(dir)
		if fi, err := os.Stat(a); err == nil && fi.Size() > 1<<20 {
			t.Fatalf("the file grew to %d bytes", fi.Size())
		}
	})
}

// A FileStore on the FS: its fsyncs mark its writes synced (the journal stays empty between them), so a cut
// after Append returned, or after Close, loses nothing.
func TestFileStoreSurvivesCut(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	journal := Journal(store)
	fs, err := Open(store)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mqttas.OpenFileStoreFS(fs, store)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 20 {
		seq, err := st.Append(mqttas.Message{Topic: "t/cut", Payload: []byte{byte(i)}, QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		if fi, err := os.Stat(journal); err != nil || fi.Size() != 0 {
			t.Fatalf("journal after a synced Append: %v, %v", fi.Size(), err)
		}
	}
	for _, seq := range seqs[:10] {
		if err := st.Ack(seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if u, err := Rollback(store); err != nil || u != (Undone{}) {
		t.Fatalf("undone %+v, %v: everything was synced", u, err)
	}
	st, err = mqttas.OpenFileStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.Pending()
	if err != nil || len(p) != 10 || p[0].Seq != seqs[10] {
		t.Fatalf("%d pending after the cut, want the 10 not acknowledged: %v", len(p), err)
	}
	if err := Discard(store); err != nil {
		t.Fatal(err)
	}
}
