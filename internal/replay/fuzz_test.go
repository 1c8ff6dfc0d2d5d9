package replay

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// FuzzReplayItems assembles transactions from fuzzed log operations and
// replays them into a real (mkfs-made) filesystem held in memory: hostile
// items must be refused with an error, never panic, hang or write outside
// the filesystem. Op encoding as xlog's FuzzAssembler: tid, flags, length,
// payload; the seeds are a buffer item, an inode item and an icreate item.
func FuzzReplayItems(f *testing.F) {
	oracle.Require(f, oracle.Tools)
	img := oracle.Mkfs(f, "300m")
	base, err := os.Open(img) // read-only: writes stay in memory
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { base.Close() })
	st, err := base.Stat()
	if err != nil {
		f.Fatal(err)
	}
	le := binary.LittleEndian
	op := func(b []byte, flags uint8, p []byte) []byte {
		b = append(b, 1, flags, byte(len(p)))
		return append(b, p...)
	}
	hdr := make([]byte, ondisk.TransHeaderSize)
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint}.Encode(hdr, le)
	start := op(op(nil, ondisk.LogStartTrans, nil), 0, hdr)
	buf := make([]byte, 24)
	le.PutUint16(buf, ondisk.LogItemBuf)
	le.PutUint16(buf[2:], 2)
	le.PutUint16(buf[6:], 1)
	le.PutUint64(buf[8:], 16)
	le.PutUint32(buf[16:], 1)
	le.PutUint32(buf[20:], 1)
	f.Add(op(op(op(start, 0, buf), 0, make([]byte, 128)), ondisk.LogCommitTrans, nil))
	ino := make([]byte, ondisk.InodeLogFormatSize)
	le.PutUint16(ino, ondisk.LogItemInode)
	le.PutUint16(ino[2:], 2)
	le.PutUint32(ino[4:], ondisk.ILogCore)
	le.PutUint64(ino[16:], 128)
	le.PutUint64(ino[40:], 128) // the root inode's cluster
	le.PutUint32(ino[48:], 16)
	core := make([]byte, ondisk.LogDinodeSize)
	le.PutUint16(core, ondisk.DinodeMagic)
	core[4] = 3
	le.PutUint64(core[152:], 128)
	le.PutUint16(core[2:], 0o100644)
	core[5] = 2 // extents
	copy(core[160:], fsUUID(f, img))
	f.Add(op(op(op(start, 0, ino), 0, core), ondisk.LogCommitTrans, nil))
	icr := make([]byte, ondisk.ICreateLogSize)
	le.PutUint16(icr, ondisk.LogItemICreate)
	le.PutUint16(icr[2:], 1)
	binary.BigEndian.PutUint32(icr[8:], 64)
	binary.BigEndian.PutUint32(icr[12:], 64)
	binary.BigEndian.PutUint32(icr[16:], 512)
	binary.BigEndian.PutUint32(icr[20:], 8)
	f.Add(op(op(start, 0, icr), ondisk.LogCommitTrans, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		dev := &memDevice{base: base, size: st.Size(), writes: map[int64][]byte{}, name: filepath.Base(img)}
		fs, err := xfs.OpenDevice(dev)
		if err != nil {
			t.Fatal(err)
		}
		a := xlog.NewAssembler()
		var ops []ondisk.LogOp
		for len(b) >= 3 {
			n := min(int(b[2]), len(b)-3)
			ops = append(ops, ondisk.LogOp{Header: ondisk.LogOpHeader{TID: uint32(b[0] % 2), Flags: b[1], Len: uint32(n),
				ClientID: ondisk.LogClientTransaction}, Data: b[3 : 3+n]})
			b = b[3+n:]
		}
		if err := a.AddRecord(ondisk.MakeLSN(1, 2), le, ops, "fuzz record"); err != nil {
			t.Log(err)
			return
		}
		l, err := xlog.Open(fs)
		if err != nil {
			t.Fatal(err)
		}
		// Odd-length inputs take InMemory's rules (intents and quota
		// items left, reads through the recovered device).
		inMemory := len(b)%2 == 1
		r := &replayer{fs: fs, sb: fs.SB, res: &Result{}, ov: overlay{}, cancel: map[bufKey]int{}, logStart: l.Daddr(0), logLen: uint64(l.Blocks()), inMemory: inMemory}
		if err := r.pass1(a.Committed); err != nil {
			t.Log(err)
			return
		}
		for _, tx := range a.Committed {
			if err := r.replayTx(tx); err != nil {
				t.Log(err)
				return
			}
		}
		if err := r.recount(); err != nil {
			t.Log(err)
			return
		}
		t.Logf("%d transactions replayed: %+v", len(a.Committed), *r.res)
		if inMemory {
			cl, err := l.Cleared(2)
			if err != nil {
				t.Fatal(err)
			}
			rd := newRecovered(dev, r.ov, cl)
			if _, err := rd.WriteAt(make([]byte, 512), 0); err == nil {
				t.Fatal("the recovered device took a write")
			}
			for _, k := range r.ov.keysUpTo(8) {
				buf := make([]byte, 3*ondisk.BBSize)
				if _, err := rd.ReadAt(buf, int64(k)*ondisk.BBSize-100); err != nil && k > 0 {
					t.Fatalf("read through the recovered device at daddr %d: %v", k, err)
				}
			}
			if len(dev.writes) != 0 {
				t.Fatal("InMemory's rules wrote the device")
			}
			return
		}
		if err := r.flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		end := int64(fs.SB.DBlocks) << fs.SB.BlockLog
		for off, w := range dev.writes {
			if off+int64(len(w)) > end {
				t.Fatalf("write at %d+%d past the filesystem's end %d", off, len(w), end)
			}
		}
	})
}

func fsUUID(f *testing.F, img string) []byte {
	fs, err := xfs.Open(img)
	if err != nil {
		f.Fatal(err)
	}
	defer fs.Close()
	u := fs.SB.MetaUUIDOrUUID()
	return u[:]
}

// memDevice reads an image file and keeps writes in memory.
type memDevice struct {
	base   *os.File
	size   int64
	writes map[int64][]byte
	name   string
}

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, os.ErrInvalid
	}
	if _, err := m.base.ReadAt(p, off); err != nil {
		return 0, err
	}
	for o, w := range m.writes {
		if o < off+int64(len(p)) && o+int64(len(w)) > off {
			lo, hi := max(o, off), min(o+int64(len(w)), off+int64(len(p)))
			copy(p[lo-off:hi-off], w[lo-o:hi-o])
		}
	}
	return len(p), nil
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, os.ErrInvalid
	}
	m.writes[off] = append([]byte(nil), p...)
	return len(p), nil
}

func (m *memDevice) Sync() error  { return nil }
func (m *memDevice) Size() int64  { return m.size }
func (m *memDevice) Close() error { return nil }
func (m *memDevice) Name() string { return m.name }

// keysUpTo returns up to n of the overlay's sectors .
func (o overlay) keysUpTo(n int) []uint64 {
	var ks []uint64
	for k := range o {
		if len(ks) == n {
			break
		}
		ks = append(ks, k)
	}
	return ks
}
