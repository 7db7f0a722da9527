package mqttas

import (
	"io"
	"os"
	"path/filepath"
)

// StoreFS is the file system under a FileStore: OSStoreFS, the operating system's, unless the application
// passes another to OpenFileStoreFS (one that counts or delays fsyncs, or can lose power at any write or sync,
// as the crash-consistency tests do). A FileStore calls it from one goroutine at a time.
type StoreFS interface {
	// MkdirAll makes dir and its parents; created says whether dir did not exist.
	MkdirAll(dir string) (created bool, err error)
	// OpenFile opens name for reading and writing, creating it when create is set.
	OpenFile(name string, create bool) (StoreFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir makes the directory's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on dir for the life of the returned Closer, or fails with
	// ErrStoreLocked.
	Lock(dir string) (io.Closer, error)
}

// StoreFile is a file of a StoreFS. Sync makes what was written durable; what was written and not synced may
// be lost at a power cut, in part or in whole.
type StoreFile interface {
	io.ReaderAt
	io.WriterAt
	Size() (int64, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// osFS is the operating system's file system.
type osFS struct{}

// OSStoreFS returns the operating system's file system, the one OpenFileStore uses: a StoreFS that wraps it
// (to count fsyncs, or to journal writes) delegates to it.
func OSStoreFS() StoreFS { return osFS{} }

func (osFS) MkdirAll(dir string) (bool, error) {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return false, &os.PathError{Op: "open store", Path: dir, Err: errNotDir}
		}
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	return true, nil
}

func (osFS) OpenFile(name string, create bool) (StoreFile, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		_ = f.Close()
		if err == nil {
			err = &os.PathError{Op: "open", Path: name, Err: errIsDir}
		}
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Lock(dir string) (io.Closer, error) { return lockDir(filepath.Join(dir, "LOCK")) }

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
