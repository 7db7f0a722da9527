package mqttas

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func fsMsg(i int) Message {
	return Message{Topic: fmt.Sprintf("s/%d", i%7), Payload: bytes.Repeat([]byte{byte(i)}, i%50), Retain: i%3 == 0, QoS: 1}
}

func fsCheckPending(t *testing.T, st *FileStore, want map[uint64]Message) {
	t.Helper()
	got, err := st.Pending()
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Pending returned %d publications, want %d", len(got), len(want))
	}
	for i, g := range got {
		if i > 0 && got[i-1].Seq >= g.Seq {
			t.Fatalf("Pending out of order: seq %d after %d", g.Seq, got[i-1].Seq)
		}
		w, ok := want[g.Seq]
		if !ok || g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) || g.Retain != w.Retain || g.QoS != 1 {
			t.Fatalf("Pending seq %d = %+v, want %+v (present %t)", g.Seq, g.Message, w, ok)
		}
	}
}

func TestFileStoreAppendAckReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b") // made by OpenFileStore
	st, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Message{}
	for i := range 100 {
		seq, err := st.Append(fsMsg(i))
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = fsMsg(i)
		if i%4 == 1 {
			if err := st.Ack(seq); err != nil {
				t.Fatal(err)
			}
			delete(want, seq)
		}
	}
	if err := st.Ack(99999); err != nil {
		t.Errorf("Ack of an unknown seq: %v", err)
	}
	fsCheckPending(t, st, want)
	if st.Syncs() < 100 {
		t.Errorf("%d fsyncs for 100 sequential appends, want at least 100", st.Syncs())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(fsMsg(1)); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("Append after Close = %v, want ErrStoreClosed", err)
	}
	if err := st.Close(); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("second Close = %v, want ErrStoreClosed", err)
	}
	st, err = OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fsCheckPending(t, st, want)
	seq, err := st.Append(fsMsg(5))
	if err != nil {
		t.Fatal(err)
	}
	if _, dup := want[seq]; dup || seq <= 100 {
		t.Errorf("seq after reopening = %d, want one beyond the last (100)", seq)
	}
}

func TestFileStoreLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st2, err := OpenFileStore(dir); !errors.Is(err, ErrStoreLocked) || st2 != nil {
		t.Fatalf("second OpenFileStore = %v, %v; want nil, ErrStoreLocked", st2, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenFileStore(dir)
	if err != nil {
		t.Fatalf("OpenFileStore after Close: %v", err)
	}
	_ = st.Close()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(file); err == nil {
		t.Error("OpenFileStore on a plain file succeeded")
	}
}

func TestFileStoreGroupCommit(t *testing.T) {
	st, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := st.Syncs()
	const writers, each = 16, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[uint64]Message{}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := fsMsg(w*each + i)
				seq, err := st.Append(m)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[seq] = m
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fsCheckPending(t, st, want)
	syncs := st.Syncs() - base
	if syncs >= writers*each {
		t.Errorf("%d fsyncs for %d concurrent appends: no group commit", syncs, writers*each)
	}
	t.Logf("%d concurrent appends, %d fsyncs (%.2f per append)", writers*each, syncs, float64(syncs)/writers/each)
}

func TestFileStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	st, err := openFileStore(osFS{}, dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Message{}
	for i := range 2000 {
		seq, err := st.Append(fsMsg(i))
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = fsMsg(i)
		if i%10 != 0 { // one in ten stays pending
			if err := st.Ack(seq); err != nil {
				t.Fatal(err)
			}
			delete(want, seq)
		}
	}
	fsCheckPending(t, st, want)
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	var live int64
	for _, m := range want {
		live += int64(len(appendRecord(nil, kindMessage, 1, &m)))
	}
	if fi.Size() > 2*live+3*4096 {
		t.Errorf("log of %d bytes for %d bytes of pending records: not compacted", fi.Size(), live)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenFileStore(dir)
	if err != nil {
		t.Fatalf("reopening after compactions: %v", err)
	}
	defer st.Close()
	fsCheckPending(t, st, want)
	if _, err := os.Stat(filepath.Join(dir, logName+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a compaction's temporary file was left: %v", err)
	}
}

// fsLog writes n publications (acknowledging those with ack(i)) to a store on memFS and returns the log's
// bytes, the messages by seq, and the spans of the message records.
func fsLog(t *testing.T, n int, ack func(int) bool) ([]byte, map[uint64]Message, map[uint64]bool) {
	t.Helper()
	fsys := newMemFS(1)
	st, err := openFileStore(fsys, crashDir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[uint64]Message{}
	acked := map[uint64]bool{}
	for i := range n {
		seq, err := st.Append(fsMsg(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		msgs[seq] = fsMsg(i + 1)
		if ack != nil && ack(i) {
			acked[seq] = true
			if err := st.Ack(seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(fsys.names[filepath.Join(crashDir, logName)].data), msgs, acked
}

// fsWithLog is a memFS whose store directory holds data as its log.
func fsWithLog(data []byte) *memFS {
	fsys := newMemFS(1)
	fsys.dirs[crashDir] = true
	ino := &memInode{data: slices.Clone(data), synced: slices.Clone(data)}
	name := filepath.Join(crashDir, logName)
	fsys.names[name], fsys.durable[name] = ino, ino
	return fsys
}

// fsOpenDamaged opens a store on fsys, which must succeed, with or without a *RecoveryError; it checks that
// a second open finds no damage and returns the pending messages and the error.
func fsOpenDamaged(t *testing.T, fsys *memFS) ([]StoredMessage, *RecoveryError) {
	t.Helper()
	st, err := openFileStore(fsys, crashDir, 1<<30)
	var rerr *RecoveryError
	if err != nil && !errors.As(err, &rerr) {
		t.Fatalf("OpenFileStore on a damaged log: %v", err)
	}
	if rerr != nil && (!errors.Is(err, ErrStoreDamaged) || len(rerr.Damage) == 0 || rerr.Error() == "") {
		t.Fatalf("RecoveryError %v: not ErrStoreDamaged or no damage listed", rerr)
	}
	got, err := st.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if rerr != nil && rerr.Recovered != len(got) {
		t.Errorf("RecoveryError.Recovered %d, Pending %d", rerr.Recovered, len(got))
	}
	if _, err := st.Append(Message{Topic: "after", QoS: 1}); err != nil {
		t.Fatalf("Append after recovery: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = openFileStore(fsys, crashDir, 1<<30)
	if err != nil {
		t.Fatalf("second open after recovery: %v, want no damage", err)
	}
	again, _ := st.Pending()
	if len(again) != len(got)+1 {
		t.Errorf("second open: %d pending, want %d", len(again), len(got)+1)
	}
	_ = st.Close()
	return got, rerr
}

func fsSeqs(ms []StoredMessage) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
		if i > 0 && out[i-1] >= out[i] {
			panic("out of order")
		}
	}
	return out
}

// A log cut at every length: everything whose record lies wholly before the cut is recovered, the cut
// record is reported (torn or truncated) unless the cut falls between records.
func TestFileStoreTruncatedAtEveryLength(t *testing.T) {
	data, msgs, _ := fsLog(t, 12, nil)
	live, _, _ := parseLog(data)
	for cut := 1; cut < len(data); cut++ {
		got, rerr := fsOpenDamaged(t, fsWithLog(data[:cut]))
		var want []uint64
		boundary := cut == len(logHeader)
		for _, r := range live {
			if r.span.off+r.span.n <= int64(cut) {
				want = append(want, r.seq)
			}
			boundary = boundary || r.span.off+r.span.n == int64(cut)
		}
		if !slices.Equal(fsSeqs(got), want) {
			t.Fatalf("cut at %d: recovered %v, want %v", cut, fsSeqs(got), want)
		}
		for _, g := range got {
			if w := msgs[g.Seq]; g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) {
				t.Fatalf("cut at %d: seq %d recovered as %q, want %q", cut, g.Seq, g.Payload, w.Payload)
			}
		}
		if boundary != (rerr == nil) {
			t.Fatalf("cut at %d (between records: %t): RecoveryError %v", cut, boundary, rerr)
		}
		if rerr != nil {
			d := rerr.Damage[len(rerr.Damage)-1]
			if d.Offset+d.Bytes != int64(cut) {
				t.Fatalf("cut at %d: damage %+v does not end at the cut", cut, d)
			}
		}
	}
}

// A bit flipped anywhere: only the record holding it is lost (an ack's loss brings its message back).
func TestFileStoreFlippedBitAnywhere(t *testing.T) {
	data, _, acked := fsLog(t, 10, func(i int) bool { return i%3 == 1 })
	live, _, _ := parseLog(data)
	for bit := range len(data) * 8 {
		d := slices.Clone(data)
		d[bit/8] ^= 1 << (bit % 8)
		got, rerr := fsOpenDamaged(t, fsWithLog(d))
		if rerr == nil {
			t.Fatalf("bit %d flipped: no damage reported", bit)
		}
		have := map[uint64]bool{}
		for _, s := range fsSeqs(got) {
			have[s] = true
		}
		for _, r := range live {
			hit := int64(bit/8) >= r.span.off && int64(bit/8) < r.span.off+r.span.n
			if !hit && !have[r.seq] {
				t.Fatalf("bit %d flipped (outside record %d at %+v): record lost; damage %v", bit, r.seq, r.span, rerr)
			}
		}
		for s := range have {
			if !slices.ContainsFunc(live, func(r logRecord) bool { return r.seq == s }) && !acked[s] {
				t.Fatalf("bit %d flipped: recovered seq %d, neither pending nor acknowledged", bit, s)
			}
		}
	}
}

func TestFileStoreUnreadableFile(t *testing.T) {
	t.Run("a read error mid-file", func(t *testing.T) {
		data, _, _ := fsLog(t, 10, nil)
		live, _, _ := parseLog(data)
		fsys := fsWithLog(data)
		at := live[6].span.off + 3
		fsys.readErr[filepath.Join(crashDir, logName)] = at
		st, err := openFileStore(fsys, crashDir, 1<<30)
		var rerr *RecoveryError
		if !errors.As(err, &rerr) || st == nil {
			t.Fatalf("OpenFileStore = %v, %v; want a store and a *RecoveryError", st, err)
		}
		defer st.Close()
		got, _ := st.Pending()
		if want := []uint64{live[0].seq, live[1].seq, live[2].seq, live[3].seq, live[4].seq, live[5].seq}; !slices.Equal(fsSeqs(got), want) {
			t.Errorf("recovered %v, want %v", fsSeqs(got), want)
		}
		if !strings.Contains(rerr.Error(), "unreadable") || !strings.Contains(rerr.Error(), "input/output error") {
			t.Errorf("RecoveryError %q does not say the file was unreadable and why", rerr)
		}
	})
	t.Run("the log cannot be opened", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, logName), 0o700); err != nil { // a directory where the log should be
			t.Fatal(err)
		}
		st, err := OpenFileStore(dir)
		var rerr *RecoveryError
		if !errors.As(err, &rerr) || st == nil {
			t.Fatalf("OpenFileStore = %v, %v; want a store and a *RecoveryError", st, err)
		}
		defer st.Close()
		if rerr.Saved != filepath.Join(dir, logName+".unreadable") || !strings.Contains(rerr.Error(), "unreadable") {
			t.Errorf("RecoveryError %+v: want the file moved to %s.unreadable", rerr, logName)
		}
		if fi, err := os.Stat(rerr.Saved); err != nil || !fi.IsDir() {
			t.Errorf("the unreadable file was not kept at %s: %v", rerr.Saved, err)
		}
		if _, err := st.Append(fsMsg(1)); err != nil {
			t.Errorf("Append after recovery: %v", err)
		}
	})
}

func TestFileStoreMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(fsMsg(1)); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if err := os.RemoveAll(dir); err != nil { // the directory is gone at the next start (a wiped volume)
		t.Fatal(err)
	}
	st, err = OpenFileStore(dir)
	if err != nil {
		t.Fatalf("OpenFileStore on a missing directory: %v", err)
	}
	defer st.Close()
	if st.Len() != 0 {
		t.Errorf("a new directory holds %d publications", st.Len())
	}
	if _, err := st.Append(fsMsg(2)); err != nil {
		t.Errorf("Append in the recreated directory: %v", err)
	}
}

func TestFileStoreDiskFull(t *testing.T) {
	fsys := newMemFS(1)
	st, err := openFileStore(fsys, crashDir, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Message{}
	for i := range 5 {
		seq, err := st.Append(fsMsg(i))
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = fsMsg(i)
	}
	fsys.mu.Lock()
	fsys.capacity = fsys.used() + 40 // room for one small record, not two
	fsys.mu.Unlock()
	full := 0
	for i := 5; i < 20; i++ {
		seq, err := st.Append(fsMsg(i))
		switch {
		case err == nil:
			want[seq] = fsMsg(i)
		case errors.Is(err, ErrStoreFull) && errors.Is(err, syscall.ENOSPC):
			full++
		default:
			t.Fatalf("Append on a full disk: %v, want ErrStoreFull", err)
		}
	}
	if full == 0 {
		t.Fatal("no Append saw the disk full")
	}
	seqs := slices.Sorted(maps.Keys(want))
	for _, seq := range seqs[:len(seqs)-1] { // this asks for a compaction, which has no room either
		if err := st.Ack(seq); err != nil {
			t.Fatalf("Ack on a full disk: %v", err)
		}
		delete(want, seq)
	}
	fsCheckPending(t, st, want)
	fsys.mu.Lock()
	fsys.capacity = fsys.used() + 100
	fsys.mu.Unlock()
	big := Message{Topic: "big", Payload: bytes.Repeat([]byte("b"), 300), QoS: 1} // written in part, then ENOSPC
	if _, err := st.Append(big); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("Append of a record larger than the room left = %v, want ErrStoreFull", err)
	}
	fsys.mu.Lock()
	fsys.capacity = -1 // room again
	fsys.mu.Unlock()
	seq, err := st.Append(Message{Topic: "t", QoS: 1}) // shorter than what the failed write left behind
	if err != nil {
		t.Fatalf("Append once there is room: %v", err)
	}
	want[seq] = Message{Topic: "t", QoS: 1}
	seq, err = st.Append(fsMsg(99))
	if err != nil {
		t.Fatalf("Append once there is room: %v", err)
	}
	want[seq] = fsMsg(99)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = openFileStore(fsys.crashImage(1), crashDir, 512)
	if err != nil {
		t.Fatalf("reopening after the disk was full: %v (a failed write must leave no torn record)", err)
	}
	defer st.Close()
	fsCheckPending(t, st, want)
}

func TestFileStoreFsyncFailure(t *testing.T) {
	fsys := newMemFS(1)
	st, err := openFileStore(fsys, crashDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Message{}
	seq, _ := st.Append(fsMsg(1))
	want[seq] = fsMsg(1)
	fsys.mu.Lock()
	fsys.syncFail = 1
	fsys.mu.Unlock()
	if _, err := st.Append(fsMsg(2)); err == nil || errors.Is(err, ErrStoreFull) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append whose fsync fails = %v, want the EIO", err)
	}
	seq, err = st.Append(fsMsg(3))
	if err != nil {
		t.Fatalf("Append after a failed fsync that was undone: %v", err)
	}
	want[seq] = fsMsg(3)
	fsCheckPending(t, st, want)
	_ = st.Close()
	st, err = openFileStore(fsys.crashImage(1), crashDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fsCheckPending(t, st, want)
}

// FuzzStoreLog feeds arbitrary bytes to the log reader: it never panics, what it recovers is valid and in
// order, the damage it reports lies within the data, and a store opened on the bytes works and is clean
// at the next open.
func FuzzStoreLog(f *testing.F) {
	var good []byte
	good = append(good, logHeader...)
	for i := range 5 {
		m := fsMsg(i)
		good = appendRecord(good, kindMessage, uint64(i+1), &m)
	}
	good = appendRecord(good, kindAck, 2, nil)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte(logHeader))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		live, damage, last := parseLog(data)
		var end int64
		for _, d := range damage {
			if d.Offset < end || d.Bytes < 0 || d.Offset+d.Bytes > int64(len(data)) {
				t.Fatalf("damage %+v outside the data or overlapping (%d bytes)", d, len(data))
			}
			end = d.Offset + d.Bytes
		}
		fresh := []byte(logHeader)
		for i, r := range live {
			if i > 0 && live[i-1].seq >= r.seq || r.seq > last || CheckTopic(r.msg.Topic) != nil || r.kind != kindMessage {
				t.Fatalf("recovered record %d (%+v) is out of order or invalid", i, r)
			}
			fresh = appendRecord(fresh, kindMessage, r.seq, &r.msg)
		}
		again, d2, _ := parseLog(fresh)
		if len(d2) != 0 || len(again) != len(live) {
			t.Fatalf("re-encoding %d recovered records gives %d with damage %v", len(live), len(again), d2)
		}
		for i := range again {
			if again[i].seq != live[i].seq || again[i].msg.Topic != live[i].msg.Topic || !bytes.Equal(again[i].msg.Payload, live[i].msg.Payload) || again[i].msg.Retain != live[i].msg.Retain {
				t.Fatalf("record %d changed in a round trip", i)
			}
		}
		fsys := fsWithLog(data)
		st, err := openFileStore(fsys, crashDir, 1<<30)
		var rerr *RecoveryError
		if err != nil && !errors.As(err, &rerr) {
			t.Fatalf("OpenFileStore: %v", err)
		}
		if st.Len() != len(live) {
			t.Fatalf("the store holds %d, the reader recovered %d", st.Len(), len(live))
		}
		_ = st.Close()
		st, err = openFileStore(fsys, crashDir, 1<<30)
		if err != nil {
			t.Fatalf("second open: %v", err)
		}
		_ = st.Close()
	})
}

func TestFileStoreCloseOnFullDisk(t *testing.T) {
	fsys := newMemFS(1)
	st, err := openFileStore(fsys, crashDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := st.Append(fsMsg(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ack(seq); err != nil {
		t.Fatal(err)
	}
	fsys.mu.Lock()
	fsys.capacity = fsys.used() // not even room for the ack
	fsys.mu.Unlock()
	if err := st.Close(); !errors.Is(err, ErrStoreFull) {
		t.Errorf("Close with an ack and a full disk = %v, want ErrStoreFull", err)
	}
	st, err = openFileStore(fsys.crashImage(1), crashDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Len() != 1 {
		t.Errorf("after losing the ack, %d pending, want 1 (a duplicate, not a loss)", st.Len())
	}
}

// The lock holds across processes: a child process (this test binary) cannot open a directory this
// process has open, and can once it is closed.
func TestFileStoreLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("MQTTAS_STORE_LOCK_CHILD"); dir != "" {
		st, err := OpenFileStore(dir)
		switch {
		case errors.Is(err, ErrStoreLocked):
			fmt.Println("locked:", err)
		case err != nil:
			fmt.Println("error:", err)
		default:
			_ = st.Close()
			fmt.Println("opened")
		}
		return
	}
	dir := t.TempDir()
	child := func() string {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFileStoreLockedAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MQTTAS_STORE_LOCK_CHILD="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	st, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out := child(); !strings.Contains(out, "locked: mqttas: store directory in use") {
		t.Errorf("a second process opened the directory this one holds:\n%s", out)
	}
	_ = st.Close()
	if out := child(); !strings.Contains(out, "opened") {
		t.Errorf("a second process could not open the directory once it was closed:\n%s", out)
	}
}

// countingFS is a StoreFS over the operating system's that counts the fsyncs of files, as an application's
// wrapper of OSStoreFS would.
type countingFS struct {
	StoreFS
	syncs *int
}

type countingFile struct {
	StoreFile
	syncs *int
}

func (c countingFS) OpenFile(name string, create bool) (StoreFile, error) {
	f, err := c.StoreFS.OpenFile(name, create)
	if err != nil {
		return nil, err
	}
	return countingFile{f, c.syncs}, nil
}

func (f countingFile) Sync() error { *f.syncs++; return f.StoreFile.Sync() }

// OpenFileStoreFS puts the store on the caller's file system: its fsyncs are the store's, and what it
// stored is there for OpenFileStore on the same directory.
func TestOpenFileStoreFS(t *testing.T) {
	if _, err := OpenFileStoreFS(nil, t.TempDir()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil file system: %v", err)
	}
	dir := t.TempDir()
	var syncs int
	st, err := OpenFileStoreFS(countingFS{OSStoreFS(), &syncs}, dir)
	if err != nil {
		t.Fatal(err)
	}
	before := syncs
	if _, err := st.Append(Message{Topic: "t/fs", Payload: []byte("one"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if syncs != before+1 || st.Syncs() == 0 {
		t.Fatalf("an Append made %d fsyncs through the file system (store counts %d), want 1", syncs-before, st.Syncs())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.Pending()
	if err != nil || len(p) != 1 || string(p[0].Payload) != "one" {
		t.Fatalf("pending %v, %v", p, err)
	}
}
