package mqttas

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
