package mqttas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
)

// The log: a header, then records. A record is its body's length (uint32 little endian), the CRC-32C of the
// body (uint32), and the body: a kind byte and a sequence number (uint64), and for a message its flags
// (bit 0: retain), its topic's length (uint16), the topic and the payload. An ack record names the message
// the broker acknowledged. Messages appear in the order of their sequence numbers.
const (
	logName     = "outbox.log"
	logHeader   = "mqttas\x00\x01"
	recHeader   = 8
	kindMessage = 'M'
	kindAck     = 'A'
	minBody     = 1 + 8
	msgFixed    = minBody + 1 + 2
	maxBody     = msgFixed + 65535 + maxRemainingLength

	// defaultCompactAt: the log is rewritten once the records of acknowledged messages take more than this
	// many bytes and more than the pending ones.
	defaultCompactAt = 4 << 20
	// ackFlushAt: acks waiting in memory are written (not synced) once they take this many bytes.
	ackFlushAt = 64 << 10
	// copyChunk bounds the buffer compaction copies records through.
	copyChunk = 256 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// span is where a record lies in the log file.
type span struct{ off, n int64 }

// logRecord is one record read back from a log.
type logRecord struct {
	kind byte
	seq  uint64
	msg  Message // kindMessage only
	span span
}

func appendRecord(b []byte, kind byte, seq uint64, m *Message) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	b = binary.LittleEndian.AppendUint64(b, seq)
	if kind == kindMessage {
		var flags byte
		if m.Retain {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Topic)))
		b = append(b, m.Topic...)
		b = append(b, m.Payload...)
	}
	body := b[start+recHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

// decodeRecord decodes the record at the start of b: its length, or an error saying why there is none.
// atEnd says the record runs past the end of b (torn or truncated).
func decodeRecord(b []byte) (r logRecord, n int, atEnd bool, err error) {
	if len(b) < recHeader {
		return r, 0, true, errors.New("torn or truncated record at the end")
	}
	size := binary.LittleEndian.Uint32(b)
	if size < minBody || size > maxBody {
		return r, 0, false, fmt.Errorf("bad record length %d", size)
	}
	if int64(len(b)-recHeader) < int64(size) {
		return r, 0, true, errors.New("torn or truncated record at the end")
	}
	body := b[recHeader : recHeader+int(size)]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, false, errors.New("checksum mismatch")
	}
	r.kind, r.seq = body[0], binary.LittleEndian.Uint64(body[1:])
	switch r.kind {
	case kindAck:
		if size != minBody {
			return r, 0, false, errors.New("malformed ack record")
		}
	case kindMessage:
		if size < msgFixed {
			return r, 0, false, errors.New("malformed message record")
		}
		tl := int(binary.LittleEndian.Uint16(body[minBody+1:]))
		if msgFixed+tl > len(body) || body[minBody]&^1 != 0 {
			return r, 0, false, errors.New("malformed message record")
		}
		topic := string(body[msgFixed : msgFixed+tl])
		if err := CheckTopic(topic); err != nil {
			return r, 0, false, fmt.Errorf("message record with an invalid topic: %v", err)
		}
		r.msg = Message{Topic: topic, Payload: body[msgFixed+tl:], QoS: 1, Retain: body[minBody]&1 != 0}
	default:
		return r, 0, false, fmt.Errorf("unknown record kind %#x", r.kind)
	}
	return r, recHeader + int(size), false, nil
}

// parseLog reads a whole log. It returns the messages not acknowledged, in order, and the stretches it
// could not read. After damage it looks for the next record that decodes, carries a sequence number beyond
// those read so far and, for an ack, names a message read before, so one flipped bit costs one record, not
// the rest of the log. It never panics, whatever data holds.
func parseLog(data []byte) (live []logRecord, damage []Damage, last uint64) {
	index := make(map[uint64]int) // seq -> position in live
	acked := 0
	valid := func(r logRecord) bool {
		if r.kind == kindMessage {
			return r.seq > last
		}
		return r.seq != 0 // an ack may outlive its message: compaction drops acknowledged messages
	}
	off := len(logHeader)
	if len(data) < off || string(data[:off]) != logHeader {
		// A damaged header: look for records all the same.
		next := len(data)
		for o := 0; o+recHeader+minBody <= len(data); o++ {
			if r, _, _, err := decodeRecord(data[o:]); err == nil && valid(r) {
				next = o
				break
			}
		}
		damage = append(damage, Damage{Offset: 0, Bytes: int64(next), Reason: "bad header"})
		off = next
	}
	for off < len(data) {
		r, n, atEnd, err := decodeRecord(data[off:])
		if err == nil && !valid(r) {
			err = fmt.Errorf("record out of sequence (seq %d after %d)", r.seq, last)
		}
		if err != nil {
			// Find the next record that stands on its own (a flipped bit in a length field also looks like
			// a record running past the end).
			next := len(data)
			for o := off + 1; o+recHeader+minBody <= len(data); o++ {
				if r2, _, _, err2 := decodeRecord(data[o:]); err2 == nil && valid(r2) {
					next = o
					break
				}
			}
			reason := err.Error()
			switch {
			case atEnd && next < len(data):
				reason = "bad record length (records follow)"
			case !atEnd && next == len(data):
				reason += " (nothing readable after it)"
			}
			damage = append(damage, Damage{Offset: int64(off), Bytes: int64(next - off), Reason: reason})
			off = next
			continue
		}
		r.span = span{int64(off), int64(n)}
		switch r.kind {
		case kindMessage:
			last = r.seq
			index[r.seq] = len(live)
			r.msg.Payload = slices.Clone(r.msg.Payload)
			live = append(live, r)
		case kindAck:
			if i, ok := index[r.seq]; ok {
				delete(index, r.seq)
				live[i].seq = 0
				acked++
			}
		}
		off += n
	}
	if acked > 0 {
		live = slices.DeleteFunc(live, func(r logRecord) bool { return r.seq == 0 })
	}
	return live, damage, last
}

// FileStore is a Store in a directory of the local disk: an append-only log of checksummed records
// (CRC-32C), written and fsynced before Append returns. Appends that arrive while an fsync runs share the
// next one (group commit), so concurrent publishers pay for one fsync per batch, not per message. Acks are
// written without an fsync; once the records of acknowledged messages outweigh the pending ones (and 4 MiB),
// the log is rewritten with only the pending ones (compaction: written to a new file, fsynced, renamed over
// the old one, the directory fsynced). A lock file (flock) keeps a second FileStore, in this process or
// another, out of the directory.
//
// Durable means fsync: what the operating system and the disk promise for it. A disk whose write cache
// ignores flushes (some SD cards, USB sticks, virtual disks with unsafe caching) can lose what an fsync
// covered at a power cut; the checksums then find the damage, and OpenFileStore reports it.
type FileStore struct {
	fsys      StoreFS
	dir, path string
	lock      io.Closer
	compactAt int64

	mu        sync.Mutex
	cond      sync.Cond // signalled when busy clears
	f         StoreFile // nil once closed
	err       error     // sticky: closed or failed
	busy      bool      // a commit or a compaction runs, with mu released
	cur       *logBatch // records waiting for the next commit
	size      int64     // bytes of the log written (and, but for trailing acks, synced)
	live      map[uint64]span
	liveBytes int64
	nextSeq   uint64

	syncs atomic.Uint64 // fsyncs of the log
}

// logBatch is what one commit writes.
type logBatch struct {
	buf      []byte
	acks     []byte     // ack records, written after buf
	msgs     []batchRec // the message records in buf
	needSync bool       // holds a message: fsync before the appenders return
	done     bool
	err      error
}

type batchRec struct {
	seq uint64
	at  span // within buf
}

// OpenFileStore opens the store in dir, creating dir (mode 0700) and the log when missing, and recovers
// what the log holds. A damaged log (a torn last record, a truncated file, a flipped bit, an unreadable
// file) is recovered up to and beyond each damaged stretch; then OpenFileStore returns the usable store
// together with a *RecoveryError that says what was dropped and why (errors.Is(err, ErrStoreDamaged)).
// Any other error comes with a nil store: ErrStoreLocked when another FileStore has dir open.
func OpenFileStore(dir string) (*FileStore, error) {
	return openFileStore(osFS{}, dir, defaultCompactAt)
}

// OpenFileStoreFS is OpenFileStore on the file system fsys instead of the operating system's (OSStoreFS).
// A FileStore is only as durable as fsys's Sync and SyncDir.
func OpenFileStoreFS(fsys StoreFS, dir string) (*FileStore, error) {
	if fsys == nil {
		return nil, fmt.Errorf("%w: OpenFileStoreFS needs a file system", ErrInvalidConfig)
	}
	return openFileStore(fsys, dir, defaultCompactAt)
}

func openFileStore(fsys StoreFS, dir string, compactAt int64) (*FileStore, error) {
	created, err := fsys.MkdirAll(dir)
	if err != nil {
		return nil, fmt.Errorf("mqttas: store directory: %w", err)
	}
	if created {
		if err := fsys.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("mqttas: store directory: %w", err)
		}
	}
	lock, err := fsys.Lock(dir)
	if err != nil {
		return nil, err
	}
	s := &FileStore{fsys: fsys, dir: dir, path: filepath.Join(dir, logName), lock: lock, compactAt: compactAt,
		live: make(map[uint64]span), nextSeq: 1}
	s.cond.L = &s.mu
	rerr, err := s.recover()
	if err != nil {
		if s.f != nil {
			_ = s.f.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	if rerr != nil {
		return s, rerr
	}
	return s, nil
}

// recover reads the log (making a new one when there is none) and, when it is damaged, rewrites it
// without the damage.
func (s *FileStore) recover() (*RecoveryError, error) {
	_ = s.fsys.Remove(s.path + ".tmp") // a compaction the last run did not finish
	var rerr *RecoveryError
	f, err := s.fsys.OpenFile(s.path, true)
	if err != nil {
		// Unreadable: keep it for inspection under another name and start a new log.
		saved := s.path + ".unreadable"
		if rnerr := s.fsys.Rename(s.path, saved); rnerr != nil {
			return nil, fmt.Errorf("mqttas: store log %s unreadable (%v) and cannot be moved aside: %w", s.path, err, rnerr)
		}
		rerr = &RecoveryError{Path: s.path, Saved: saved, Damage: []Damage{{Bytes: -1, Reason: "unreadable: " + err.Error()}}}
		if f, err = s.fsys.OpenFile(s.path, true); err != nil {
			return nil, fmt.Errorf("mqttas: store log: %w", err)
		}
	}
	s.f = f
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("mqttas: store log: %w", err)
	}
	if size == 0 {
		if err := s.writeFresh(); err != nil {
			return nil, err
		}
		return rerr, nil
	}
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	var damage []Damage
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		damage = append(damage, Damage{Offset: int64(n), Bytes: size - int64(n), Reason: "unreadable: " + err.Error()})
		data = data[:n]
	}
	live, d, last := parseLog(data)
	damage = append(d, damage...)
	s.nextSeq = last + 1
	for _, r := range live {
		s.live[r.seq] = r.span
		s.liveBytes += r.span.n
	}
	s.size = int64(len(data))
	if len(damage) == 0 {
		s.size = size
		return rerr, nil
	}
	if rerr == nil {
		rerr = &RecoveryError{Path: s.path}
	}
	rerr.Damage = append(rerr.Damage, damage...)
	rerr.Recovered = len(live)
	if err := s.rewrite(); err != nil {
		return nil, fmt.Errorf("mqttas: store log %s damaged (%v) and cannot be rewritten: %w", s.path, rerr, err)
	}
	return rerr, nil
}

// writeFresh writes the header of an empty log and makes it durable, entry included.
func (s *FileStore) writeFresh() error {
	if _, err := s.f.WriteAt([]byte(logHeader), 0); err != nil {
		return storeErr("writing the log header", err)
	}
	if err := s.f.Sync(); err != nil {
		return storeErr("fsync", err)
	}
	s.syncs.Add(1)
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return storeErr("fsync of the directory", err)
	}
	s.size = int64(len(logHeader))
	return nil
}

func storeErr(op string, err error) error {
	if diskFull(err) {
		return fmt.Errorf("%w: %s: %w", ErrStoreFull, op, err)
	}
	return fmt.Errorf("mqttas: store: %s: %w", op, err)
}

// Append stores m and returns once it is durable (written and fsynced). Appends that arrive while an fsync
// runs share the next one. A full disk returns ErrStoreFull; what was stored before stays stored.
func (s *FileStore) Append(m Message) (uint64, error) {
	if len(m.Topic) > 65535 || len(m.Payload) > maxRemainingLength {
		return 0, fmt.Errorf("%w: a message of %d bytes", ErrPacketTooLarge, len(m.Topic)+len(m.Payload))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	seq := s.nextSeq
	s.nextSeq++
	b := s.batch()
	at := len(b.buf)
	b.buf = appendRecord(b.buf, kindMessage, seq, &m)
	b.msgs = append(b.msgs, batchRec{seq, span{int64(at), int64(len(b.buf) - at)}})
	b.needSync = true
	for !b.done {
		switch {
		case s.busy:
			s.cond.Wait()
		case s.err != nil: // the commit before failed the store, or Close ran
			b.err, b.done = s.err, true
			s.cur = nil
		default:
			s.commitLocked()
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	return seq, nil
}

func (s *FileStore) batch() *logBatch {
	if s.cur == nil {
		s.cur = &logBatch{}
	}
	return s.cur
}

// commitLocked writes the waiting batch at the end of the log and fsyncs it when it holds messages. It
// releases mu while it writes. On a failure it cuts the log back to what it held before, so a torn batch
// never sits between records; if even that fails the store is failed until opened again.
func (s *FileStore) commitLocked() {
	b := s.cur
	s.cur = nil
	s.busy = true
	off := s.size
	f := s.f
	s.mu.Unlock()
	data := append(b.buf, b.acks...)
	_, err := f.WriteAt(data, off)
	if err != nil {
		err = storeErr("write", err)
	} else if b.needSync {
		if err = f.Sync(); err != nil {
			err = storeErr("fsync", err)
		}
		s.syncs.Add(1)
	}
	if err != nil {
		if terr := f.Truncate(off); terr != nil {
			err = fmt.Errorf("%w: %w (and cutting the log back failed: %v)", ErrStoreFailed, err, terr)
		} else if serr := f.Sync(); serr != nil {
			err = fmt.Errorf("%w: %w (and cutting the log back failed: %v)", ErrStoreFailed, err, serr)
		}
	}
	s.mu.Lock()
	if err == nil {
		s.size = off + int64(len(data))
		for _, r := range b.msgs {
			s.live[r.seq] = span{off + r.at.off, r.at.n}
			s.liveBytes += r.at.n
		}
	} else if errors.Is(err, ErrStoreFailed) {
		if s.err == nil {
			s.err = err
		}
	} else if len(b.acks) > 0 { // the acks go with the next write
		nb := s.batch()
		nb.acks = append(b.acks, nb.acks...)
	}
	b.err, b.done = err, true
	s.busy = false
	s.cond.Broadcast()
}

// Ack records that the broker acknowledged seq. It writes without an fsync (acks wait in memory for the
// next Append's write, or until they add up to 64 KiB), and compacts the log when acknowledged records
// outweigh pending ones.
func (s *FileStore) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		if errors.Is(s.err, ErrStoreClosed) {
			return s.err
		}
		return nil // failed: the ack is lost, which costs a duplicate
	}
	sp, ok := s.live[seq]
	if !ok {
		return nil
	}
	delete(s.live, seq)
	s.liveBytes -= sp.n
	b := s.batch()
	b.acks = appendRecord(b.acks, kindAck, seq, nil)
	if s.size-int64(len(logHeader))-s.liveBytes > max(s.compactAt, s.liveBytes) {
		return s.compactLocked()
	}
	if !s.busy && len(b.acks) >= ackFlushAt {
		s.commitLocked()
		if b.err != nil && !errors.Is(b.err, ErrStoreFailed) {
			return nil // not written: the acks are lost, which costs duplicates
		}
		return b.err
	}
	return nil
}

// compactLocked rewrites the log with only the pending messages; appends wait meanwhile.
func (s *FileStore) compactLocked() error {
	for s.busy {
		s.cond.Wait()
	}
	if s.err != nil {
		return nil
	}
	s.busy = true
	err := s.rewrite()
	s.busy = false
	s.cond.Broadcast()
	if err != nil && !diskFull(err) {
		return err
	}
	return nil // no room for the new log: the old one stays, as good as before
}

// rewrite writes the pending messages to a new log, makes it durable and renames it over the log. It is
// called with mu held and busy set (or before the store is shared); it releases mu while it copies.
func (s *FileStore) rewrite() error {
	seqs := make([]uint64, 0, len(s.live))
	for seq := range s.live {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	spans := make([]span, len(seqs))
	for i, seq := range seqs {
		spans[i] = s.live[seq]
	}
	old := s.f
	locked := s.busy
	if locked {
		s.mu.Unlock()
	}
	nf, newSpans, size, err := s.writeLog(old, spans)
	if locked {
		s.mu.Lock()
	}
	if err != nil {
		return err
	}
	_ = old.Close()
	s.f = nf
	s.size = size
	s.liveBytes = 0
	for i, seq := range seqs {
		if _, ok := s.live[seq]; ok { // not acknowledged while the copy ran
			s.live[seq] = newSpans[i]
			s.liveBytes += newSpans[i].n
		}
	}
	return nil
}

// writeLog copies the records at spans of old into a new log and puts it in place of the old one.
func (s *FileStore) writeLog(old StoreFile, spans []span) (StoreFile, []span, int64, error) {
	tmp := s.path + ".tmp"
	nf, err := s.fsys.OpenFile(tmp, true)
	if err != nil {
		return nil, nil, 0, storeErr("compaction", err)
	}
	fail := func(op string, err error) (StoreFile, []span, int64, error) {
		_ = nf.Close()
		_ = s.fsys.Remove(tmp)
		return nil, nil, 0, storeErr(op, err)
	}
	if err := nf.Truncate(0); err != nil {
		return fail("compaction", err)
	}
	buf := append(make([]byte, 0, copyChunk), logHeader...)
	var off int64 // of buf in the new file
	newSpans := make([]span, len(spans))
	for i, sp := range spans {
		if len(buf) > 0 && int64(len(buf))+sp.n > copyChunk {
			if _, err := nf.WriteAt(buf, off); err != nil {
				return fail("compaction write", err)
			}
			off += int64(len(buf))
			buf = buf[:0]
		}
		at := len(buf)
		buf = slices.Grow(buf, int(sp.n))[:at+int(sp.n)]
		if _, err := old.ReadAt(buf[at:], sp.off); err != nil {
			return fail("compaction read", err)
		}
		newSpans[i] = span{off + int64(at), sp.n}
	}
	if _, err := nf.WriteAt(buf, off); err != nil {
		return fail("compaction write", err)
	}
	size := off + int64(len(buf))
	if err := nf.Sync(); err != nil {
		return fail("compaction fsync", err)
	}
	s.syncs.Add(1)
	if err := s.fsys.Rename(tmp, s.path); err != nil {
		return fail("compaction rename", err)
	}
	// Until the directory is durable the old log may come back at a crash: nothing may be appended to the
	// new one before.
	if err := s.fsys.SyncDir(s.dir); err != nil {
		_ = nf.Close()
		return nil, nil, 0, storeErr("compaction: fsync of the directory", err)
	}
	return nf, newSpans, size, nil
}

// Pending returns the publications not yet acknowledged, in the order of Append, read back from the log.
func (s *FileStore) Pending() ([]StoredMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.cond.Wait()
	}
	if s.f == nil {
		return nil, ErrStoreClosed
	}
	seqs := make([]uint64, 0, len(s.live))
	for seq := range s.live {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	out := make([]StoredMessage, 0, len(seqs))
	for _, seq := range seqs {
		sp := s.live[seq]
		b := make([]byte, sp.n)
		if _, err := s.f.ReadAt(b, sp.off); err != nil {
			return nil, fmt.Errorf("mqttas: store: reading record %d: %w", seq, err)
		}
		r, _, _, err := decodeRecord(b)
		if err != nil || r.kind != kindMessage || r.seq != seq {
			return nil, fmt.Errorf("%w: record %d at %d changed on disk since it was written: %v", ErrStoreDamaged, seq, sp.off, err)
		}
		out = append(out, StoredMessage{Seq: seq, Message: r.msg})
	}
	return out, nil
}

// Len returns how many publications the store holds that the broker has not acknowledged.
func (s *FileStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Syncs returns how many fsyncs of the log the store has made since it was opened.
func (s *FileStore) Syncs() uint64 { return s.syncs.Load() }

// Close writes the acks still in memory, closes the log and releases the directory's lock. Appends waiting
// for an fsync complete first. Later calls return ErrStoreClosed.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.cond.Wait()
	}
	if s.f == nil {
		return ErrStoreClosed
	}
	var err error
	for s.cur != nil && s.err == nil { // appends waiting, and the acks in memory
		if s.busy {
			s.cond.Wait()
			continue
		}
		b := s.cur
		b.needSync = true
		s.commitLocked()
		if err = b.err; err != nil {
			break // a full disk: the acks are lost, which costs duplicates
		}
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	s.err = ErrStoreClosed
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}
