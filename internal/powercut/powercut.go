// Package powercut puts an mqttas FileStore on a file system that can lose power: every write goes to the
// operating system at once, so a process crash (SIGKILL) keeps it as the page cache does, and is journaled
// beside the store with what it replaced until the file's next fsync. Rollback, run after the process is
// gone, undoes every write of the journal that no fsync covered, newest first, as a power cut drops what was
// not synced. A process that dies without a power cut just discards the journal (Discard).
//
// Only file data is rolled back. Directory operations (create, rename, remove) count as durable when made,
// as on a file system mounted with dirsync; losing them is covered by mqttas's own crash-point tests over an
// in-memory file system (mqttas/storecrash_test.go).
//
// The journal is one JSON object per line, written with one write(2) each before the data write it undoes
// (so a SIGKILL between the two leaves an undo of nothing); a torn last line is a write that never began.
package powercut

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mqttas/mqttas-go/mqttas"
)

// record is one journal line. Op is "w" (a write over Off, Old being the bytes it replaced below the synced
// size), "t" (a truncation to Off, Old the synced bytes it cut), "s" (Path synced), "r" (Path renamed to To)
// or "rm" (Path removed).
type record struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	To     string `json:"to,omitempty"`
	Synced int64  `json:"synced,omitempty"`
	Off    int64  `json:"off,omitempty"`
	Old    []byte `json:"old,omitempty"`
}

// FS is an mqttas.StoreFS over the operating system's that journals its unsynced writes to a file.
type FS struct {
	base mqttas.StoreFS
	dir  string

	mu      sync.Mutex
	journal *os.File
	files   map[string]*file // open files by name
	// leftover: a file was closed with writes not synced, so the journal is never emptied.
	leftover bool
}

// Journal is where the journal of the store in dir is kept: beside it, <dir>.powercut.
func Journal(dir string) string { return filepath.Clean(dir) + ".powercut" }

// Open returns an FS for the store in dir, journaling to Journal(dir), which it creates or empties: call
// Rollback or Discard for the last run's journal first. Only files in dir may be written through it.
func Open(dir string) (*FS, error) {
	j, err := os.OpenFile(Journal(dir), os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("powercut: journal: %w", err)
	}
	return &FS{base: mqttas.OSStoreFS(), dir: filepath.Clean(dir), journal: j, files: map[string]*file{}}, nil
}

// inside reports whether path is in dir.
func inside(dir, path string) bool {
	rel, err := filepath.Rel(dir, filepath.Clean(path))
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ErrOutside is returned for a file outside the store's directory.
var ErrOutside = errors.New("powercut: a file outside the store's directory")

// Close closes the journal (the store on the FS first).
func (fs *FS) Close() error { return fs.journal.Close() }

func (fs *FS) log(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := fs.journal.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("powercut: journal: %w", err)
	}
	return nil
}

// MkdirAll, SyncDir and Lock are the operating system's.
func (fs *FS) MkdirAll(dir string) (bool, error) { return fs.base.MkdirAll(dir) }
func (fs *FS) SyncDir(dir string) error          { return fs.base.SyncDir(dir) }
func (fs *FS) Lock(dir string) (io.Closer, error) {
	return fs.base.Lock(dir)
}

// OpenFile opens name; what it holds now counts as synced.
func (fs *FS) OpenFile(name string, create bool) (mqttas.StoreFile, error) {
	if !inside(fs.dir, name) {
		return nil, fmt.Errorf("%w: %s", ErrOutside, name)
	}
	f, err := fs.base.OpenFile(name, create)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	fl := &file{StoreFile: f, fs: fs, name: name, synced: size}
	fs.mu.Lock()
	fs.files[name] = fl
	fs.mu.Unlock()
	return fl, nil
}

// Rename renames at once (durable, see the package doc); unsynced writes of oldpath follow the file.
func (fs *FS) Rename(oldpath, newpath string) error {
	if !inside(fs.dir, oldpath) || !inside(fs.dir, newpath) {
		return fmt.Errorf("%w: %s → %s", ErrOutside, oldpath, newpath)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.log(record{Op: "r", Path: oldpath, To: newpath}); err != nil {
		return err
	}
	if err := fs.base.Rename(oldpath, newpath); err != nil {
		return err
	}
	if f, ok := fs.files[oldpath]; ok {
		delete(fs.files, oldpath)
		f.name = newpath
		fs.files[newpath] = f
	}
	return nil
}

// Remove removes at once; the file's unsynced writes go with it.
func (fs *FS) Remove(name string) error {
	if !inside(fs.dir, name) {
		return fmt.Errorf("%w: %s", ErrOutside, name)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.log(record{Op: "rm", Path: name}); err != nil {
		return err
	}
	return fs.base.Remove(name)
}

// file is an open file of an FS.
type file struct {
	mqttas.StoreFile
	fs     *FS
	name   string // guarded by fs.mu
	synced int64  // the size at the last fsync (or the open), guarded by fs.mu
	dirty  bool   // written since, guarded by fs.mu
}

// old returns the bytes of [off, off+n) below the synced size, as they are now.
func (f *file) old(off, n int64) ([]byte, error) {
	end := min(off+n, f.synced)
	if off >= end {
		return nil, nil
	}
	b := make([]byte, end-off)
	if _, err := f.StoreFile.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	old, err := f.old(off, int64(len(b)))
	if err != nil {
		return 0, err
	}
	if err := f.fs.log(record{Op: "w", Path: f.name, Synced: f.synced, Off: off, Old: old}); err != nil {
		return 0, err
	}
	f.dirty = true
	return f.StoreFile.WriteAt(b, off)
}

func (f *file) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	old, err := f.old(size, max(f.synced-size, 0))
	if err != nil {
		return err
	}
	if err := f.fs.log(record{Op: "t", Path: f.name, Synced: f.synced, Off: size, Old: old}); err != nil {
		return err
	}
	f.dirty = true
	return f.StoreFile.Truncate(size)
}

// Sync fsyncs, then marks the file's writes as synced in the journal: a kill between the two undoes writes
// whose fsync never returned, as a power cut during an fsync may.
func (f *file) Sync() error {
	if err := f.StoreFile.Sync(); err != nil {
		return err
	}
	size, err := f.StoreFile.Size()
	if err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.synced, f.dirty = size, false
	if err := f.fs.log(record{Op: "s", Path: f.name}); err != nil {
		return err
	}
	return f.fs.trimLocked()
}

// trimLocked empties the journal when no file has a write to undo, so it stays as small as what is unsynced.
func (fs *FS) trimLocked() error {
	if fs.leftover {
		return nil
	}
	for _, f := range fs.files {
		if f.dirty {
			return nil
		}
	}
	if err := fs.journal.Truncate(0); err != nil {
		return fmt.Errorf("powercut: journal: %w", err)
	}
	return nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	if f.fs.files[f.name] == f {
		delete(f.fs.files, f.name)
	}
	f.fs.leftover = f.fs.leftover || f.dirty
	f.fs.mu.Unlock()
	return f.StoreFile.Close()
}

// Undone is what Rollback dropped.
type Undone struct {
	Writes int   // writes and truncations undone
	Bytes  int64 // bytes cut from the ends of files
}

// Rollback undoes, in the files of dir that its journal names, every write no fsync covered, and removes
// the journal. A missing journal is nothing to undo; a journal naming a file outside dir is refused
// (ErrOutside) before anything is undone. The process that wrote it must be gone.
func Rollback(dir string) (Undone, error) {
	var u Undone
	dir, journal := filepath.Clean(dir), Journal(dir)
	data, err := os.ReadFile(journal)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("powercut: %w", err)
	}
	pending := map[string][]record{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	for line := 1; sc.Scan(); line++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			if sc.Scan() {
				return u, fmt.Errorf("powercut: %s: line %d: %w", journal, line, err)
			}
			break // the last line, torn: the write it preceded never began
		}
		if !inside(dir, r.Path) || (r.Op == "r" && !inside(dir, r.To)) {
			return u, fmt.Errorf("%w: %s: line %d: %s", ErrOutside, journal, line, r.Path)
		}
		switch r.Op {
		case "w", "t":
			if r.Synced < 0 || r.Off < 0 || (len(r.Old) > 0 && r.Off+int64(len(r.Old)) > r.Synced) {
				return u, fmt.Errorf("powercut: %s: line %d: a write of %d bytes at %d, synced size %d", journal, line,
					len(r.Old), r.Off, r.Synced)
			}
			if len(pending[r.Path]) == 0 {
				order = append(order, r.Path)
			}
			pending[r.Path] = append(pending[r.Path], r)
		case "s":
			pending[r.Path] = nil
		case "r":
			if p := pending[r.Path]; len(p) > 0 {
				if len(pending[r.To]) == 0 {
					order = append(order, r.To)
				}
				pending[r.To] = p
			} else {
				pending[r.To] = nil
			}
			delete(pending, r.Path)
		case "rm":
			delete(pending, r.Path)
		default:
			return u, fmt.Errorf("powercut: %s: line %d: unknown op %q", journal, line, r.Op)
		}
	}
	if err := sc.Err(); err != nil {
		return u, fmt.Errorf("powercut: %s: %w", journal, err)
	}
	for _, path := range order {
		rs := pending[path]
		if len(rs) == 0 {
			continue
		}
		pending[path] = nil // a path listed twice (renamed back) is undone once
		n, err := undo(path, rs)
		if err != nil {
			return u, err
		}
		u.Writes += len(rs)
		u.Bytes += n
	}
	if err := os.Remove(journal); err != nil {
		return u, fmt.Errorf("powercut: %w", err)
	}
	return u, nil
}

// undo restores path to its state at the last fsync before rs: its synced size, then the old bytes of
// each write, newest first. It returns how many bytes it cut.
func undo(path string, rs []record) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // removed or renamed away since: nothing of it is left to undo
	}
	if err != nil {
		return 0, fmt.Errorf("powercut: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("powercut: %w", err)
	}
	synced, room := rs[0].Synced, fi.Size()
	for _, r := range rs {
		if r.Op == "t" {
			room = max(room, r.Off+int64(len(r.Old)))
		}
	}
	if synced > room {
		return 0, fmt.Errorf("powercut: the journal has %s synced to %d bytes, more than it ever held (%d)", path, synced, room)
	}
	if err := f.Truncate(synced); err != nil {
		return 0, fmt.Errorf("powercut: %w", err)
	}
	for i := len(rs) - 1; i >= 0; i-- {
		if len(rs[i].Old) > 0 {
			if _, err := f.WriteAt(rs[i].Old, rs[i].Off); err != nil {
				return 0, fmt.Errorf("powercut: %w", err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("powercut: %w", err)
	}
	return max(fi.Size()-synced, 0), nil
}

// Discard removes the journal of the store in dir after a run that ended without a power cut: its writes
// stay.
func Discard(dir string) error {
	if err := os.Remove(Journal(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("powercut: %w", err)
	}
	return nil
}
