package image

import (
	"bufio"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The undo journal makes in-place edits of an image atomic at a cost that
// grows with the blocks changed, not the image size: before a block is first
// overwritten in a transaction its old contents are appended to
// IMAGE.xfskit-undo and that file is fsync'd; Commit fsyncs the image and
// deletes the journal; after a crash the journal is played back (old blocks
// restored, the image cut back to its old size) the next time the image is
// opened.
//
// Journal layout (little-endian): a 512-byte header, then entries
// {magic, crc32c, nonce, image offset, length, seq, data[length]}. The
// header names the journal's random nonce, the block size, the image's old
// size and a CRC32c of its old first 64 KiB (identity). Entries that fail
// their CRC end the journal: they were being written when the process died,
// and their image block was not yet touched.

// UndoSuffix is appended to the image path to name its undo journal.
const UndoSuffix = ".xfskit-undo"

// DefaultUndoBlockSize is the unit of saved old contents.
const DefaultUndoBlockSize = 4096

const (
	undoMagic        = "XFSKUNDO"
	undoVersion      = 1
	undoHeaderSize   = 512
	undoEntryMagic   = 0x454e5558 // "XUNE"
	undoEntryHdrSize = 32
	undoIdentLen     = 64 * 1024
	maxUndoBlockSize = 1 << 20
	// The journal is zero-filled ahead in chunks so that appends overwrite
	// allocated blocks and need only an fdatasync.
	undoMinChunk = 256 << 10
	undoMaxChunk = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Truncater is a Device whose size can be set (regular image files).
type Truncater interface {
	Truncate(size int64) error
}

// Datasync flushes the file's data (fdatasync): cheaper than Sync when the
// file's size and allocation did not change.
func (d *File) Datasync() error {
	if err := syscall.Fdatasync(int(d.f.Fd())); err != nil {
		return fmt.Errorf("%s: fdatasync: %w", d.name, err)
	}
	return nil
}

type datasyncer interface{ Datasync() error }

func datasync(d Device) error {
	if ds, ok := d.(datasyncer); ok {
		return ds.Datasync()
	}
	return d.Sync()
}

// Truncate sets the size of the image file.
func (d *File) Truncate(size int64) error {
	if err := d.f.Truncate(size); err != nil {
		return fmt.Errorf("%s: truncate to %d bytes: %w", d.name, size, err)
	}
	d.size = size
	return nil
}

// TxDevice is a writable device with an explicit commit point.
type TxDevice interface {
	Device
	// Commit makes every write since the last commit durable and final.
	Commit() error
	// Rollback discards them (only possible with an undo journal).
	Rollback() error
}

// ErrNotAtomic is returned by Rollback of a device opened without journal.
var ErrNotAtomic = errors.New("image: opened with atomic=no: changes cannot be rolled back")

// plainTx is the atomic=no choice: writes go straight to the image.
type plainTx struct{ *File }

func (p plainTx) Commit() error   { return p.Sync() }
func (p plainTx) Rollback() error { return ErrNotAtomic }

// OpenWrite opens an image for modification: with atomic, through an undo
// journal (recovering an interrupted earlier edit first), else directly.
func OpenWrite(path string, atomic bool) (TxDevice, error) {
	if atomic {
		return OpenAtomic(path)
	}
	f, err := Open(path, true)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	// A journal left by an atomic run must not be silently ignored.
	if _, err := os.Lstat(path + UndoSuffix); err == nil {
		if _, err := RecoverDevice(f, path+UndoSuffix); err != nil {
			f.Close()
			return nil, err
		}
	}
	return plainTx{f}, nil
}

// UndoOptions tunes an undo layer.
type UndoOptions struct {
	BlockSize   int    // unit of saved old contents; default DefaultUndoBlockSize
	JournalPath string // default: device name + UndoSuffix
	// CreateJournal creates the journal file exclusively; tests wrap the
	// result in a Fault device. Default: a new regular file.
	CreateJournal func(path string) (Device, error)
}

// Undo is the undo-journal layer over a Device.
type Undo struct {
	dev    Device
	bs     int64
	jpath  string
	create func(string) (Device, error)

	mu       sync.Mutex
	j        Device // nil outside a transaction
	jend     int64  // end of the valid entries
	jcap     int64  // bytes zero-filled and made durable
	nonce    uint64
	seq      uint32
	origSize int64
	saved    map[int64]bool
	broken   error // a failed write: the transaction can only be rolled back
}

// OpenAtomic opens path read-write under an undo journal, first rolling back
// any transaction a crashed earlier run left behind. The image is locked
// (flock) against other xfskit processes while open.
func OpenAtomic(path string) (*Undo, error) {
	f, err := Open(path, true)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := RecoverDevice(f, path+UndoSuffix); err != nil {
		f.Close()
		return nil, err
	}
	u, err := NewUndo(f, UndoOptions{})
	if err != nil {
		f.Close()
		return nil, err
	}
	return u, nil
}

func lockFile(f *File) error {
	if err := syscall.Flock(int(f.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%s: image is in use by another xfskit process", f.name)
		}
		return fmt.Errorf("%s: lock: %w", f.name, err)
	}
	return nil
}

// NewUndo wraps dev. It refuses if a journal already exists: that is an
// unrecovered crash (run Recover) or another writer.
func NewUndo(dev Device, opts UndoOptions) (*Undo, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultUndoBlockSize
	}
	if bs < 512 || bs > maxUndoBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("undo block size %d: want a power of two from 512 to %d", bs, maxUndoBlockSize)
	}
	jp := opts.JournalPath
	if jp == "" {
		jp = dev.Name() + UndoSuffix
	}
	if _, err := os.Lstat(jp); err == nil {
		return nil, fmt.Errorf("%s: undo journal %s exists: an earlier edit was interrupted; recover it first", dev.Name(), jp)
	}
	create := opts.CreateJournal
	if create == nil {
		create = createJournalFile
	}
	return &Undo{dev: dev, bs: int64(bs), jpath: jp, create: create, saved: map[int64]bool{}}, nil
}

func createJournalFile(path string) (Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &File{f: f, name: path}, nil
}

// syncDir makes a creation or removal in path's directory durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// JournalPath is where the undo journal lives.
func (u *Undo) JournalPath() string { return u.jpath }

// JournalSize is the current journal size in bytes (0 outside a
// transaction).
func (u *Undo) JournalSize() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.jend
}

// identity is the CRC32c of the first n bytes.
func identity(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// readFull reads len(b) bytes at off, zero-filling past the end of dev.
func readFull(dev Device, b []byte, off int64) error {
	n, err := dev.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(b[n:])
	return nil
}

// begin starts a transaction: the journal and its header are durable (file
// and directory entry) before the image is touched.
func (u *Undo) begin() error {
	u.origSize = u.dev.Size()
	ident := make([]byte, min(undoIdentLen, u.origSize))
	if err := readFull(u.dev, ident, 0); err != nil {
		return err
	}
	var nb [8]byte
	if _, err := crand.Read(nb[:]); err != nil {
		return err
	}
	u.nonce = binary.LittleEndian.Uint64(nb[:])
	hdr := make([]byte, undoHeaderSize)
	copy(hdr, undoMagic)
	le := binary.LittleEndian
	le.PutUint32(hdr[8:], undoVersion)
	le.PutUint64(hdr[16:], u.nonce)
	le.PutUint32(hdr[24:], uint32(u.bs))
	le.PutUint32(hdr[28:], uint32(len(ident)))
	le.PutUint64(hdr[32:], uint64(u.origSize))
	le.PutUint32(hdr[40:], identity(ident))
	le.PutUint32(hdr[12:], crc32.Checksum(hdr, crcTable))
	j, err := u.create(u.jpath)
	if err != nil {
		return fmt.Errorf("%s: create undo journal: %w", u.dev.Name(), err)
	}
	u.j = j
	u.jend, u.jcap, u.seq = undoHeaderSize, 0, 0
	if err := u.grow(undoMinChunk, hdr); err != nil {
		return err
	}
	return syncDir(u.jpath)
}

// grow zero-fills the journal up to at least need bytes (first writing hdr
// at offset 0 if given) and fsyncs it, size and all.
func (u *Undo) grow(need int64, hdr []byte) error {
	newCap := max(need, 2*u.jcap, undoMinChunk)
	newCap = min(newCap, max(need, u.jcap+undoMaxChunk))
	if hdr != nil {
		if _, err := u.j.WriteAt(hdr, 0); err != nil {
			return fmt.Errorf("%s: write undo journal header: %w", u.jpath, err)
		}
	}
	zero := make([]byte, min(newCap-u.jend, 1<<20))
	for off := u.jend; off < newCap; off += int64(len(zero)) {
		n := min(int64(len(zero)), newCap-off)
		if _, err := u.j.WriteAt(zero[:n], off); err != nil {
			return fmt.Errorf("%s: extend undo journal: %w", u.jpath, err)
		}
	}
	if err := u.j.Sync(); err != nil {
		return fmt.Errorf("%s: fsync undo journal: %w", u.jpath, err)
	}
	u.jcap = newCap
	return nil
}

// ReadAt reads through to the image.
func (u *Undo) ReadAt(p []byte, off int64) (int, error) { return u.dev.ReadAt(p, off) }

// WriteAt saves the old contents of every block p overwrites for the first
// time in this transaction (fsync'd to the journal) and then writes p.
func (u *Undo) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: write at negative offset %d", u.dev.Name(), off)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.broken != nil {
		return 0, fmt.Errorf("%s: transaction must be rolled back after an earlier failure: %w", u.dev.Name(), u.broken)
	}
	if u.j == nil {
		if err := u.begin(); err != nil {
			u.broken = err
			return 0, err
		}
	}
	var batch []byte
	var newly []int64
	for b := off / u.bs; b <= (off+int64(len(p))-1)/u.bs; b++ {
		start := b * u.bs
		if u.saved[b] {
			continue
		}
		if start >= u.origSize {
			// Beyond the old end: cutting the image back undoes it.
			u.saved[b] = true
			continue
		}
		n := min(u.bs, u.origSize-start)
		e := make([]byte, undoEntryHdrSize+n)
		if err := readFull(u.dev, e[undoEntryHdrSize:], start); err != nil {
			return 0, err
		}
		u.seq++
		le := binary.LittleEndian
		le.PutUint32(e[0:], undoEntryMagic)
		le.PutUint64(e[8:], u.nonce)
		le.PutUint64(e[16:], uint64(start))
		le.PutUint32(e[24:], uint32(n))
		le.PutUint32(e[28:], u.seq)
		le.PutUint32(e[4:], crc32.Checksum(e, crcTable))
		batch = append(batch, e...)
		newly = append(newly, b)
	}
	if len(batch) > 0 {
		if need := u.jend + int64(len(batch)); need > u.jcap {
			if err := u.grow(need, nil); err != nil {
				u.broken = err
				return 0, err
			}
		}
		if _, err := u.j.WriteAt(batch, u.jend); err != nil {
			u.broken = err
			return 0, fmt.Errorf("%s: append to undo journal: %w", u.jpath, err)
		}
		if err := datasync(u.j); err != nil {
			u.broken = err
			return 0, fmt.Errorf("%s: fdatasync undo journal: %w", u.jpath, err)
		}
		u.jend += int64(len(batch))
		for _, b := range newly {
			u.saved[b] = true
		}
	}
	n, err := u.dev.WriteAt(p, off)
	if err != nil {
		u.broken = err
	}
	return n, err
}

// Sync flushes the image without ending the transaction.
func (u *Undo) Sync() error { return u.dev.Sync() }

// Size is the current image size.
func (u *Undo) Size() int64 { return u.dev.Size() }

// Name is the image name.
func (u *Undo) Name() string { return u.dev.Name() }

func (u *Undo) reset() {
	u.j, u.jend, u.jcap, u.seq, u.broken = nil, 0, 0, 0, nil
	u.saved = map[int64]bool{}
}

// Commit ends the transaction: the image is fsync'd, then the journal is
// deleted (and the deletion made durable). Until the deletion, a crash
// rolls the image back.
func (u *Undo) Commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.broken != nil {
		return fmt.Errorf("%s: cannot commit after a failed write (roll back instead): %w", u.dev.Name(), u.broken)
	}
	if err := u.dev.Sync(); err != nil {
		return fmt.Errorf("%s: fsync before commit: %w", u.dev.Name(), err)
	}
	if u.j == nil {
		return nil
	}
	cerr := u.j.Close()
	if err := os.Remove(u.jpath); err != nil {
		return fmt.Errorf("%s: commit: remove undo journal: %w", u.dev.Name(), errors.Join(err, cerr))
	}
	u.reset()
	return syncDir(u.jpath)
}

// Rollback restores every block changed since the last commit and the old
// image size, and deletes the journal.
func (u *Undo) Rollback() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.j == nil {
		u.broken = nil
		return nil
	}
	u.j.Close()
	u.j = nil
	if _, err := RecoverDevice(u.dev, u.jpath); err != nil {
		return err
	}
	u.reset()
	return nil
}

// Close rolls back an uncommitted transaction and closes the image.
func (u *Undo) Close() error {
	err := u.Rollback()
	return errors.Join(err, u.dev.Close())
}

// Recover rolls back the interrupted transaction recorded in path's undo
// journal, if any, and reports whether it did.
func Recover(path string) (rolledBack bool, err error) {
	jp := path + UndoSuffix
	if _, err := os.Lstat(jp); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	f, err := Open(path, true)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return false, err
	}
	return RecoverDevice(f, jp)
}

type undoHeader struct {
	nonce    uint64
	bs       int64
	identLen int64
	origSize int64
	identCRC uint32
}

// parseUndoHeader decodes the journal header; torn reports a header that
// was never completely written (so the image was never touched).
func parseUndoHeader(b []byte) (h undoHeader, torn bool, err error) {
	if len(b) < undoHeaderSize {
		return h, true, nil
	}
	b = b[:undoHeaderSize]
	le := binary.LittleEndian
	if string(b[:8]) != undoMagic {
		for _, c := range b {
			if c != 0 {
				return h, false, errors.New("not an xfskit undo journal (bad magic)")
			}
		}
		return h, true, nil
	}
	c := append([]byte(nil), b...)
	le.PutUint32(c[12:], 0)
	if crc32.Checksum(c, crcTable) != le.Uint32(b[12:]) {
		return h, true, nil
	}
	if v := le.Uint32(b[8:]); v != undoVersion {
		return h, false, fmt.Errorf("undo journal version %d, this xfskit reads %d", v, undoVersion)
	}
	h = undoHeader{nonce: le.Uint64(b[16:]), bs: int64(le.Uint32(b[24:])), identLen: int64(le.Uint32(b[28:])),
		origSize: int64(le.Uint64(b[32:])), identCRC: le.Uint32(b[40:])}
	if h.bs < 512 || h.bs > maxUndoBlockSize || h.identLen > undoIdentLen || h.identLen > h.origSize || h.origSize < 0 {
		return h, false, fmt.Errorf("undo journal header out of range (block size %d, identity %d bytes, old size %d)", h.bs, h.identLen, h.origSize)
	}
	return h, false, nil
}

type undoEntry struct {
	joff int64 // offset of the data in the journal
	off  int64 // image offset
	n    int64
}

// scanUndo returns the valid prefix of entries; the first bad entry ends the
// journal (it was torn by the crash).
func scanUndo(jf *os.File, h undoHeader) ([]undoEntry, error) {
	if _, err := jf.Seek(undoHeaderSize, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(jf, 1<<20)
	le := binary.LittleEndian
	var out []undoEntry
	pos := int64(undoHeaderSize)
	eh := make([]byte, undoEntryHdrSize)
	data := make([]byte, h.bs)
	for seq := uint32(1); ; seq++ {
		if _, err := io.ReadFull(r, eh); err != nil {
			return out, nil
		}
		off, n := int64(le.Uint64(eh[16:])), int64(le.Uint32(eh[24:]))
		if le.Uint32(eh[0:]) != undoEntryMagic || le.Uint64(eh[8:]) != h.nonce || le.Uint32(eh[28:]) != seq ||
			n <= 0 || n > h.bs || off < 0 || off%h.bs != 0 || off+n > h.origSize {
			return out, nil
		}
		if _, err := io.ReadFull(r, data[:n]); err != nil {
			return out, nil
		}
		want := le.Uint32(eh[4:])
		le.PutUint32(eh[4:], 0)
		c := crc32.Update(crc32.Checksum(eh, crcTable), crcTable, data[:n])
		if c != want {
			return out, nil
		}
		out = append(out, undoEntry{joff: pos + undoEntryHdrSize, off: off, n: n})
		pos += undoEntryHdrSize + n
	}
}

// RecoverDevice rolls dev back from the undo journal at jpath, if present:
// old blocks are written back (oldest copy wins), the image is cut back to
// its old size, fsync'd, and the journal removed. A journal whose header was
// never completely written is just removed. A journal whose identity does
// not match the image is refused and left alone.
func RecoverDevice(dev Device, jpath string) (rolledBack bool, err error) {
	jf, err := os.Open(jpath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer jf.Close()
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("%s: undo journal %s: %w", dev.Name(), jpath, err)
	}
	hb := make([]byte, undoHeaderSize)
	n, err := io.ReadFull(jf, hb)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	h, torn, err := parseUndoHeader(hb[:n])
	if err != nil {
		return fail(err)
	}
	if torn {
		// The header was never made durable, so no image write followed.
		jf.Close()
		if err := os.Remove(jpath); err != nil {
			return fail(err)
		}
		return false, syncDir(jpath)
	}
	entries, err := scanUndo(jf, h)
	if err != nil {
		return fail(err)
	}
	// Identity: the image's old first bytes, rebuilt from the current ones
	// with saved blocks put back, must match what the header recorded.
	ident := make([]byte, h.identLen)
	if err := readFull(dev, ident, 0); err != nil {
		return fail(err)
	}
	buf := make([]byte, h.bs)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.off >= h.identLen {
			continue
		}
		if _, err := jf.ReadAt(buf[:e.n], e.joff); err != nil {
			return fail(err)
		}
		copy(ident[e.off:min(h.identLen, e.off+e.n)], buf[:e.n])
	}
	if identity(ident) != h.identCRC {
		return fail(errors.New("journal does not belong to this image (identity of the first 64 KiB differs); not rolling back — move the journal aside if the image was replaced"))
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if _, err := jf.ReadAt(buf[:e.n], e.joff); err != nil {
			return fail(err)
		}
		if _, err := dev.WriteAt(buf[:e.n], e.off); err != nil {
			return fail(err)
		}
	}
	if dev.Size() > h.origSize {
		t, ok := dev.(Truncater)
		if !ok {
			return fail(fmt.Errorf("image grew to %d bytes and cannot be cut back to %d", dev.Size(), h.origSize))
		}
		if err := t.Truncate(h.origSize); err != nil {
			return fail(err)
		}
	}
	if err := dev.Sync(); err != nil {
		return fail(err)
	}
	jf.Close()
	if err := os.Remove(jpath); err != nil {
		return fail(err)
	}
	return true, syncDir(jpath)
}
