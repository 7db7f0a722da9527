package mqttas

// memFS: an in-memory StoreFS that can lose power, for the crash-consistency tests (in the manner of
// ALICE and CrashMonkey). Each file keeps what was written and what was fsynced; the directory keeps its
// entries and the entries as of its last fsync. Every write, fsync, truncation, rename, removal and
// directory fsync is a numbered operation; at the chosen one the power goes: that operation (a write may
// land torn) and every later one fail, and crashImage returns the disk as a reboot finds it: the synced
// entries, each file's synced bytes and, when torn is set, a random prefix of what was written after them.
// It also fills up (capacity) and fails reads (readErr) for the damaged-log tests.

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

var errPowerCut = errors.New("memfs: power cut")

type memInode struct {
	data   []byte // what reads see
	synced []byte // what survives a power cut
}

type memFS struct {
	mu      sync.Mutex
	names   map[string]*memInode // the directory now
	durable map[string]*memInode // the directory as of its last fsync
	dirs    map[string]bool
	locks   map[string]bool

	ops     int // operations so far
	crashAt int // the operation at which the power goes; 0: never
	crashed bool
	torn    bool
	rng     *rand.Rand

	capacity int64            // bytes all files may hold together; <0: unlimited
	readErr  map[string]int64 // reads of the file at or beyond this offset fail with EIO
	openErr  map[string]error // opening the file fails
	syncFail int              // the next n fsyncs of a file fail with EIO
}

func newMemFS(seed uint64) *memFS {
	return &memFS{names: map[string]*memInode{}, durable: map[string]*memInode{}, dirs: map[string]bool{},
		locks: map[string]bool{}, capacity: -1, rng: rand.New(rand.NewPCG(seed, 1)), readErr: map[string]int64{},
		openErr: map[string]error{}}
}

// op counts an operation; false means the power is gone (and perhaps just went).
func (m *memFS) op() bool {
	if m.crashed {
		return false
	}
	m.ops++
	if m.crashAt > 0 && m.ops >= m.crashAt {
		m.crashed = true
		return false
	}
	return true
}

// crashImage is the disk after the power cut (or now, when there was none), on a fresh memFS.
func (m *memFS) crashImage(seed uint64) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := newMemFS(seed)
	maps.Copy(n.dirs, m.dirs)
	for name, ino := range m.durable {
		b := slices.Clone(ino.synced)
		if m.torn && len(ino.data) > len(ino.synced) && bytesHavePrefix(ino.data, ino.synced) {
			extra := ino.data[len(ino.synced):]
			b = append(b, extra[:m.rng.IntN(len(extra)+1)]...)
		}
		ino2 := &memInode{data: b, synced: slices.Clone(b)}
		n.names[name] = ino2
		n.durable[name] = ino2
	}
	return n
}

func bytesHavePrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

func (m *memFS) used() int64 {
	var n int64
	for _, ino := range m.names {
		n += int64(len(ino.data))
	}
	return n
}

func (m *memFS) MkdirAll(dir string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return false, errPowerCut
	}
	if _, isFile := m.names[dir]; isFile {
		return false, syscall.ENOTDIR
	}
	if m.dirs[dir] {
		return false, nil
	}
	m.dirs[dir] = true
	return true, nil
}

func (m *memFS) OpenFile(name string, create bool) (StoreFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, errPowerCut
	}
	if err := m.openErr[name]; err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	ino, ok := m.names[name]
	if !ok {
		if !create {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
		if !m.dirs[filepath.Dir(name)] {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
		ino = &memInode{}
		m.names[name] = ino
	}
	return &memFile{fs: m, name: name, ino: ino}, nil
}

func (m *memFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.op() {
		return errPowerCut
	}
	ino, ok := m.names[oldpath]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: os.ErrNotExist}
	}
	delete(m.openErr, newpath)
	m.openErr[newpath], m.openErr[oldpath] = m.openErr[oldpath], nil
	delete(m.names, oldpath)
	m.names[newpath] = ino
	return nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.names[name]; !ok {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	if !m.op() {
		return errPowerCut
	}
	delete(m.names, name)
	return nil
}

func (m *memFS) SyncDir(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.op() {
		return errPowerCut
	}
	m.durable = maps.Clone(m.names)
	return nil
}

type memLock struct {
	m   *memFS
	dir string
}

func (l memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	delete(l.m.locks, l.dir)
	return nil
}

func (m *memFS) Lock(dir string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[dir] {
		return nil, fmt.Errorf("%w: %s", ErrStoreLocked, dir)
	}
	m.locks[dir] = true
	return memLock{m, dir}, nil
}

type memFile struct {
	fs     *memFS
	name   string
	ino    *memInode
	closed bool
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	d := f.ino.data
	if off >= int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(b, d[off:])
	if at, ok := f.fs.readErr[f.name]; ok && off+int64(n) > at {
		n = int(max(0, at-off))
		return n, &os.PathError{Op: "read", Path: f.name, Err: syscall.EIO}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	ino := f.ino
	n := len(b)
	var err error
	if m.capacity >= 0 {
		avail := m.capacity - m.used()
		if grow := off + int64(n) - int64(len(ino.data)); grow > avail {
			n = int(min(max(0, int64(len(ino.data))+avail-off), int64(n)))
			err = &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	if !m.op() {
		if m.torn && m.crashed {
			n = m.rng.IntN(n + 1) // the write the power cut interrupted lands torn
		} else {
			return 0, errPowerCut
		}
		err = errPowerCut
	}
	if end := off + int64(n); end > int64(len(ino.data)) {
		ino.data = append(ino.data, make([]byte, end-int64(len(ino.data)))...)
	}
	copy(ino.data[off:], b[:n])
	return n, err
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if !f.fs.op() {
		return errPowerCut
	}
	if size <= int64(len(f.ino.data)) {
		f.ino.data = f.ino.data[:size]
	} else {
		f.ino.data = append(f.ino.data, make([]byte, size-int64(len(f.ino.data)))...)
	}
	return nil
}

func (f *memFile) Sync() error {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.op() {
		return errPowerCut
	}
	if m.syncFail > 0 {
		m.syncFail--
		return &os.PathError{Op: "sync", Path: f.name, Err: syscall.EIO}
	}
	f.ino.synced = slices.Clone(f.ino.data)
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.closed = true
	return nil
}
