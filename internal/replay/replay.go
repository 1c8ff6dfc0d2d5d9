// Package replay recovers a dirty XFS log offline, as the kernel does at
// mount: it reassembles the committed transactions between tail and head,
// replays their buffer, inode and inode-chunk items in log order into the
// image, recomputes the lazy superblock counters and leaves a clean log.
// Everything is written through the image's undo journal, so a crash leaves
// either the old image or the replayed one. Logs holding work only the
// kernel's allocator can finish (unfinished intents) or quota updates are
// refused before anything is written. InMemory does the same replay for
// readers that must not write the image (dump), into a read-only overlay.
package replay

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"xfskit/internal/image"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// ErrUnsupported marks logs replay refuses (unfinished intents, quota items,
// extent owner changes): the image is left untouched and the kernel can
// still recover it at mount.
var ErrUnsupported = errors.New("log needs the kernel to replay")

// ErrMounted is returned for an image that is mounted.
var ErrMounted = errors.New("mounted")

// Result describes one replay.
type Result struct {
	Image        string `json:"image"`
	WasClean     bool   `json:"was_clean"` // nothing to do; nothing written
	Log          string `json:"log"`       // the log's state before replay
	Torn         string `json:"torn,omitempty"`
	Transactions int    `json:"transactions"`
	Uncommitted  int    `json:"uncommitted"` // cut off by the crash, not replayed
	Buffers      int    `json:"buffers"`     // buffer items replayed
	BufSkipped   int    `json:"buffers_skipped"`
	Cancelled    int    `json:"cancelled"` // items whose buffer a cancel record freed, and the cancel records

	Inodes       int    `json:"inodes"`
	InodeSkipped int    `json:"inodes_skipped"`
	ICreates     int    `json:"icreates"`
	Intents      int    `json:"intents"`         // intents found, all finished
	Sectors      int    `json:"sectors_written"` // replayed 512-byte sectors (the log rewrite aside)
	NewHead      string `json:"new_head,omitempty"`
	// UnlinkedInodes counts AGI unlinked-list heads after replay: inodes
	// deleted while open, which only the kernel can free (Replay refuses;
	// InMemory leaves them: they have no name).
	UnlinkedInodes int `json:"unlinked_buckets"`
	// InMemory: replayed by InMemory, nothing written. Unfinished lists
	// the intents it left undone ("2 EFI"), QuotaSkipped the quota items.
	InMemory     bool     `json:"in_memory,omitempty"`
	Unfinished   []string `json:"unfinished_intents,omitempty"`
	QuotaSkipped int      `json:"quota_items_skipped,omitempty"`
	// PendingFree lists the extents of unfinished EFIs (InMemory): still
	// allocated, owned by no file. OnlyFrees: EFIs are the only unfinished
	// intents.
	PendingFree []ondisk.FreeExtent `json:"pending_free,omitempty"`
	OnlyFrees   bool                `json:"-"`
	// The superblock's lazy counters were recomputed from the AG headers.
	CountersChanged bool   `json:"counters_changed"`
	OldICount       uint64 `json:"old_icount"`
	OldIFree        uint64 `json:"old_ifree"`
	OldFDBlocks     uint64 `json:"old_fdblocks"`
}

// LeftToKernel lists what InMemory left for the kernel's recovery to
// finish ("2 EFI", "1 unlinked list of inodes deleted while open", ...).
func (r *Result) LeftToKernel() []string {
	left := r.AccountingLeft()
	if r.UnlinkedInodes > 0 {
		left = append(left, fmt.Sprintf("%d unlinked lists of inodes deleted while open", r.UnlinkedInodes))
	}
	return left
}

// AccountingLeft is the part of LeftToKernel that leaves the free-space,
// reverse-mapping, reference-count or quota accounting unfinished.
func (r *Result) AccountingLeft() []string {
	left := slices.Clone(r.Unfinished)
	if r.QuotaSkipped > 0 {
		left = append(left, fmt.Sprintf("%d quota items", r.QuotaSkipped))
	}
	return left
}

// Run replays the log of the image at path in place, atomically.
func Run(path string) (*Result, error) {
	if m, err := image.MountedAt(path); err != nil {
		return nil, err
	} else if m != nil {
		return nil, fmt.Errorf("%s is mounted at %s: the kernel owns its log: %w", path, m.Point, ErrMounted)
	}
	dev, err := image.OpenAtomic(path)
	if err != nil {
		return nil, err
	}
	res, err := Replay(dev)
	if err == nil {
		err = dev.Commit()
	}
	if err != nil {
		if rerr := dev.Rollback(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		dev.Close()
		return nil, err
	}
	return res, dev.Close()
}

// Replay replays the log of the filesystem on dev. Every check runs before
// the first write; the caller commits or rolls back.
func Replay(dev image.Device) (*Result, error) {
	r, err := recoverLog(dev, false)
	if err != nil || r.res.WasClean {
		return resultOf(r), err
	}
	if err := r.flush(); err != nil {
		return nil, err
	}
	head, err := r.log.Clear(r.st.HeadCycle + 1)
	if err != nil {
		return nil, fmt.Errorf("%s: writing a clean log: %w", r.fs.Name(), err)
	}
	r.res.NewHead = head.String()
	return r.res, nil
}

// InMemory replays the log of the filesystem on dev into memory, for
// readers that must not write the image (dump, check): it returns a
// read-only Device that shows the filesystem as Replay would leave it (a
// clean log included), or dev itself when the log is clean. Work that only the kernel's
// allocator can finish is left undone, since no file's contents depend on
// it: unfinished free-space, reverse-mapping and refcount intents, inodes
// on the AGI unlinked lists (they have no name) and quota updates. Logs
// whose unfinished work would still change a file (mapping, attribute and
// exchange intents) are refused with ErrUnsupported.
func InMemory(dev image.Device) (image.Device, *Result, error) {
	r, err := recoverLog(dev, true)
	if err != nil {
		return nil, nil, err
	}
	if r.res.WasClean {
		return dev, r.res, nil
	}
	cl, err := r.log.Cleared(r.st.HeadCycle + 1)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.fs.Name(), err)
	}
	r.res.NewHead = ondisk.MakeLSN(cl.Cycle, uint32(len(cl.Rec)/ondisk.BBSize)).String()
	return newRecovered(dev, r.ov, cl), r.res, nil
}

func resultOf(r *replayer) *Result {
	if r == nil {
		return nil
	}
	return r.res
}

// recoverLog reads the log and replays it into the replayer's overlay;
// nothing is written. inMemory selects InMemory's rules.
func recoverLog(dev image.Device, inMemory bool) (*replayer, error) {
	fs, err := xfs.OpenDevice(dev)
	if err != nil {
		return nil, err
	}
	name := fs.Name()
	res := &Result{Image: name, InMemory: inMemory}
	l, err := xlog.Open(fs)
	if err != nil {
		return nil, err
	}
	st, err := l.Find()
	if err != nil {
		return nil, fmt.Errorf("%s: finding the log head and tail: %w", name, err)
	}
	res.Log = st.String()
	if st.Torn != nil {
		res.Torn = st.Torn.Err.Error()
	}
	r := &replayer{fs: fs, sb: fs.SB, res: res, ov: overlay{}, cancel: map[bufKey]int{},
		logStart: l.Daddr(0), logLen: uint64(l.Blocks()), log: l, st: st, inMemory: inMemory}
	if st.Clean {
		res.WasClean = true
		return r, nil
	}
	if st.HeadCycle >= 1<<31-1 {
		// The new log needs a higher cycle; LSN cycles are kept below 2^31.
		return nil, ondisk.Corrupt("log", name, "", "head cycle %d leaves no higher cycle for a clean log", st.HeadCycle)
	}
	txs, uncommitted, err := l.Transactions(st)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the log (nothing was written): %w", name, err)
	}
	res.Transactions, res.Uncommitted = len(txs), uncommitted
	if err := r.pass1(txs); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, tx := range txs {
		if err := r.replayTx(tx); err != nil {
			return nil, fmt.Errorf("%s: replaying the transaction at LSN %v: %w", name, tx.LSN, err)
		}
	}
	if err := r.recount(); err != nil {
		if errors.Is(err, ErrUnsupported) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, fmt.Errorf("%s: recomputing the superblock counters: %w", name, err)
	}
	return r, nil
}

type bufKey struct {
	daddr int64
	len   uint16
}

type replayer struct {
	fs       *xfs.FS
	sb       *ondisk.Superblock
	res      *Result
	ov       overlay
	cancel   map[bufKey]int // cancel records not yet passed (pass 2)
	logStart uint64
	logLen   uint64
	log      *xlog.Log
	st       *xlog.State
	inMemory bool // InMemory: leave the allocator's work undone
}

// pass1 refuses what cannot be replayed here and counts buffer cancel
// records, as recovery's first pass does.
func (r *replayer) pass1(txs []*xlog.Transaction) error {
	pending := map[uint16]map[uint64]bool{}
	type region struct {
		p  []byte
		bo binary.ByteOrder
	}
	efis := map[uint64]region{} // EFI format regions by id
	for _, tx := range txs {
		bo := tx.Order
		for _, it := range tx.Items {
			p := it.Regions[0]
			switch it.Type {
			case ondisk.LogItemBuf:
				f, err := ondisk.DecodeBufLogFormat(p, bo)
				if err != nil {
					return fmt.Errorf("transaction at LSN %v: %w", tx.LSN, err)
				}
				if f.Flags&ondisk.BufLogDquotBufs != 0 {
					if r.inMemory {
						r.res.QuotaSkipped++
						continue
					}
					return fmt.Errorf("the log holds quota (dquot) buffer updates, which xfskit does not replay: %w", ErrUnsupported)
				}
				if f.Flags&ondisk.BufLogCancel != 0 {
					r.cancel[bufKey{f.Blkno, f.Len}]++
				}
			case ondisk.LogItemInode:
				f, err := ondisk.DecodeInodeLogFormat(p, bo)
				if err != nil {
					return fmt.Errorf("transaction at LSN %v: %w", tx.LSN, err)
				}
				if f.Fields&(ondisk.ILogDOwner|ondisk.ILogAOwner) != 0 {
					return fmt.Errorf("inode %d: the log holds an extent-swap owner change, which needs the kernel: %w", f.Ino, ErrUnsupported)
				}
			case ondisk.LogItemICreate:
			case ondisk.LogItemDquot, ondisk.LogItemQuotaOff:
				if r.inMemory {
					r.res.QuotaSkipped++
					continue
				}
				return fmt.Errorf("the log holds quota (%s) items, which xfskit does not replay: %w", ondisk.LogItemName(it.Type), ErrUnsupported)
			default:
				id, err := ondisk.LogItemID(p, bo)
				if err != nil {
					return fmt.Errorf("transaction at LSN %v: %s item: %w", tx.LSN, ondisk.LogItemName(it.Type), err)
				}
				if _, ok := ondisk.IntentDone[it.Type]; ok {
					if pending[it.Type] == nil {
						pending[it.Type] = map[uint64]bool{}
					}
					pending[it.Type][id] = true
					r.res.Intents++
					if it.Type == ondisk.LogItemEFI {
						efis[id] = region{p, bo}
					}
				} else if in, ok := ondisk.IntentOf[it.Type]; ok {
					delete(pending[in], id)
				} else {
					return fmt.Errorf("transaction at LSN %v: unknown log item type %s: %w", tx.LSN, ondisk.LogItemName(it.Type), ErrUnsupported)
				}
			}
		}
	}
	if ids := pending[ondisk.LogItemEFI]; len(ids) > 0 && r.inMemory {
		for id := range ids {
			_, exts, err := ondisk.DecodeEFI(efis[id].p, efis[id].bo)
			if err != nil {
				return fmt.Errorf("EFI %#x: %w", id, err)
			}
			r.res.PendingFree = append(r.res.PendingFree, exts...)
		}
		slices.SortFunc(r.res.PendingFree, func(a, b ondisk.FreeExtent) int { return cmp.Compare(a.Start, b.Start) })
	}
	var left, allowed []string
	for t, ids := range pending {
		if len(ids) == 0 {
			continue
		}
		what := fmt.Sprintf("%d %s", len(ids), ondisk.LogItemName(t))
		if r.inMemory && allocatorOnly[t] {
			allowed = append(allowed, what)
		} else {
			left = append(left, what)
		}
	}
	sort.Strings(allowed)
	r.res.Unfinished = allowed
	r.res.OnlyFrees = len(allowed) == 1 && len(pending[ondisk.LogItemEFI]) > 0
	if len(left) > 0 {
		sort.Strings(left)
		if r.inMemory {
			return fmt.Errorf("the log holds unfinished intents that would still change files (%s): "+
				"mount the filesystem once to let the kernel recover it: %w", strings.Join(left, ", "), ErrUnsupported)
		}
		return fmt.Errorf("the log holds unfinished intents (%s): finishing them needs the kernel's allocator; "+
			"mount the filesystem once to let the kernel recover it (nothing was written): %w", strings.Join(left, ", "), ErrUnsupported)
	}
	return nil
}

// allocatorOnly are the intents whose unfinished work changes only
// free-space, reverse-mapping and reference-count metadata, never what a
// file holds: InMemory leaves them undone.
var allocatorOnly = map[uint16]bool{ondisk.LogItemEFI: true, ondisk.LogItemRUI: true, ondisk.LogItemCUI: true}

// replayTx replays one transaction's items in the order recovery uses:
// buffers and new inode chunks first, then inodes, then inode buffers'
// unlinked pointers, then cancel records.
func (r *replayer) replayTx(tx *xlog.Transaction) error {
	rank := func(it *xlog.Item) int {
		switch it.Type {
		case ondisk.LogItemBuf:
			f, err := ondisk.DecodeBufLogFormat(it.Regions[0], tx.Order)
			switch {
			case err != nil:
				return 0 // pass1 refused it already; buffer() reports it too
			case f.Flags&ondisk.BufLogCancel != 0:
				return 3
			case f.Flags&ondisk.BufLogInodeBuf != 0:
				return 2
			}
			return 0
		case ondisk.LogItemICreate:
			return 0
		case ondisk.LogItemInode:
			return 1
		}
		return 4
	}
	// Ranked once: a checkpoint can hold tens of thousands of items.
	type ranked struct {
		it   *xlog.Item
		rank int
	}
	items := make([]ranked, len(tx.Items))
	for i, it := range tx.Items {
		items[i] = ranked{it, rank(it)}
	}
	slices.SortStableFunc(items, func(a, b ranked) int { return a.rank - b.rank })
	for _, ri := range items {
		it := ri.it
		var err error
		switch it.Type {
		case ondisk.LogItemBuf:
			err = r.buffer(tx, it)
		case ondisk.LogItemInode:
			err = r.inode(tx, it)
		case ondisk.LogItemICreate:
			err = r.icreate(tx, it)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkRange refuses buffers outside the data device or inside the log.
func (r *replayer) checkRange(what string, daddr int64, n int) error {
	end := uint64(r.sb.DBlocks) << (r.sb.BlockLog - ondisk.BBShift)
	d := uint64(daddr)
	if d+uint64(n) > end {
		return ondisk.Corrupt(what, fmt.Sprintf("daddr %d", daddr), "", "%d blocks reach past the filesystem's end (daddr %d)", n, end)
	}
	if d < r.logStart+r.logLen && d+uint64(n) > r.logStart {
		return ondisk.Corrupt(what, fmt.Sprintf("daddr %d", daddr), "", "%d blocks overlap the log", n)
	}
	return nil
}

func (r *replayer) cancelled(daddr int64, n uint16) bool { return r.cancel[bufKey{daddr, n}] > 0 }

func (r *replayer) buffer(tx *xlog.Transaction, it *xlog.Item) error {
	f, err := ondisk.DecodeBufLogFormat(it.Regions[0], tx.Order)
	if err != nil {
		return err
	}
	if f.Flags&ondisk.BufLogDquotBufs != 0 {
		return nil // InMemory only (pass1 refuses them otherwise): quota files are nobody's data
	}
	key := bufKey{f.Blkno, f.Len}
	if f.Flags&ondisk.BufLogCancel != 0 {
		// Later copies of the buffer replay again once every cancel record
		// before them has been passed.
		if r.cancel[key]--; r.cancel[key] <= 0 {
			delete(r.cancel, key)
		}
		r.res.Cancelled++
		return nil
	}
	if r.cancelled(f.Blkno, f.Len) {
		r.res.Cancelled++
		return nil
	}
	where := fmt.Sprintf("buffer at daddr %d", f.Blkno)
	if err := r.checkRange("buffer log item", f.Blkno, int(f.Len)); err != nil {
		return err
	}
	runs, err := f.Runs()
	if err != nil {
		return err
	}
	if len(runs) != len(it.Regions)-1 {
		return ondisk.Corrupt("buffer log item", where, "blf_data_map", "%d logged runs but %d data regions", len(runs), len(it.Regions)-1)
	}
	buf, err := r.ov.read(r.fs, uint64(f.Blkno), int(f.Len)*ondisk.BBSize)
	if err != nil {
		return err
	}
	if lsn, ok := r.bufLSN(buf); ok && lsn != 0 && ondisk.CompareLSN(lsn, tx.LSN) >= 0 {
		// The block on disk is already newer than this change.
		r.res.BufSkipped++
		return nil
	}
	if f.Flags&ondisk.BufLogInodeBuf != 0 {
		if err := r.unlinkedPointers(buf, runs, it.Regions[1:], where); err != nil {
			return err
		}
	} else {
		for i, run := range runs {
			src := it.Regions[i+1]
			copy(buf[run.Off:run.Off+min(run.Len, len(src))], src)
		}
		r.stamp(buf, tx.LSN)
	}
	r.ov.write(uint64(f.Blkno), buf)
	r.res.Buffers++
	return nil
}

// bufLSN returns the LSN of a self-describing block that belongs to this
// filesystem; ok is false when the block must be replayed regardless
// (unknown contents, inode or remote attribute blocks, another UUID).
func (r *replayer) bufLSN(b []byte) (ondisk.LSN, bool) {
	s := ondisk.StampOf(b)
	if !s.Ok || s.LSNOff < 0 {
		return 0, false
	}
	uoff, want := s.UUIDOff, r.metaUUID()
	if binary.BigEndian.Uint32(b) == ondisk.SBMagic && r.sb.FeaturesIncompat&ondisk.IncompatMetaUUID == 0 {
		uoff = 32
	}
	if ondisk.UUID(b[uoff:uoff+16]) != want {
		return 0, false
	}
	lsn := binary.BigEndian.Uint64(b[s.LSNOff:])
	if lsn == ^uint64(0) {
		return 0, false
	}
	return ondisk.LSN(lsn), true
}

func (r *replayer) metaUUID() ondisk.UUID {
	if r.sb.FeaturesIncompat&ondisk.IncompatMetaUUID != 0 {
		return r.sb.MetaUUID
	}
	return r.sb.UUID
}

// stamp gives a replayed block the transaction's LSN and a fresh CRC, as
// the kernel's write verifiers do when recovery writes it back: the logged
// copy carries whatever CRC the block had in memory.
func (r *replayer) stamp(b []byte, lsn ondisk.LSN) {
	if ondisk.IsInodeBuffer(b) {
		isize := int(r.sb.InodeSize)
		for off := 0; off+isize <= len(b); off += isize {
			if ondisk.IsInodeBuffer(b[off:]) {
				ondisk.SetCRC(b[off:off+isize], ondisk.DinodeCRCOff)
			}
		}
		return
	}
	s := ondisk.StampOf(b)
	if !s.Ok {
		return
	}
	step := len(b)
	if s.PerBlock {
		step = int(r.sb.BlockSize)
	}
	for off := 0; off+step <= len(b); off += step {
		p := b[off : off+step]
		if ondisk.StampOf(p).Name != s.Name {
			continue
		}
		if s.LSNOff >= 0 {
			binary.BigEndian.PutUint64(p[s.LSNOff:], uint64(lsn))
		}
		ondisk.SetCRC(p, s.CRCOff)
	}
}

// unlinkedPointers replays only the di_next_unlinked fields of an inode
// buffer: the rest of each logged chunk may be older than the inodes'
// own log items.
func (r *replayer) unlinkedPointers(buf []byte, runs []ondisk.BufLogRun, regions [][]byte, where string) error {
	const nextOff = 96
	isize := int(r.sb.InodeSize)
	ri := 0
	for off := 0; off+isize <= len(buf); off += isize {
		fo := off + nextOff
		for ri < len(runs) && fo >= runs[ri].Off+runs[ri].Len {
			ri++
		}
		if ri == len(runs) {
			break
		}
		if fo < runs[ri].Off {
			continue
		}
		src := regions[ri]
		o := fo - runs[ri].Off
		if o+4 > len(src) {
			return ondisk.Corrupt("inode buffer log item", where, "", "logged region %d of %d bytes lacks the unlinked pointer at %d", ri, len(src), o)
		}
		if binary.BigEndian.Uint32(src[o:]) == 0 {
			return ondisk.Corrupt("inode buffer log item", where, "di_next_unlinked", "logged unlinked pointer of the inode at offset %d is 0", off)
		}
		copy(buf[fo:fo+4], src[o:o+4])
		if ondisk.IsInodeBuffer(buf[off:]) {
			ondisk.SetCRC(buf[off:off+isize], ondisk.DinodeCRCOff)
		}
	}
	return nil
}

func (r *replayer) inode(tx *xlog.Transaction, it *xlog.Item) error {
	f, err := ondisk.DecodeInodeLogFormat(it.Regions[0], tx.Order)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("inode %d", f.Ino)
	if len(it.Regions) != int(f.Size) {
		return ondisk.Corrupt("inode log item", where, "ilf_size", "%d regions logged, %d announced", len(it.Regions), f.Size)
	}
	if r.cancelled(f.Blkno, uint16(f.Len)) {
		r.res.Cancelled++
		return nil
	}
	if err := r.checkRange("inode log item", f.Blkno, int(f.Len)); err != nil {
		return err
	}
	isize := int(r.sb.InodeSize)
	if int(f.BOffset)+isize > int(f.Len)*ondisk.BBSize {
		return ondisk.Corrupt("inode log item", where, "ilf_boffset", "inode at offset %d runs past its %d-block buffer", f.BOffset, f.Len)
	}
	// Only the sectors holding this inode: a cluster buffer is 8-32 KiB.
	first := int(f.BOffset) / ondisk.BBSize
	last := (int(f.BOffset) + isize + ondisk.BBSize - 1) / ondisk.BBSize
	daddr := uint64(f.Blkno) + uint64(first)
	buf, err := r.ov.read(r.fs, daddr, (last-first)*ondisk.BBSize)
	if err != nil {
		return err
	}
	dip := buf[int(f.BOffset)-first*ondisk.BBSize:][:isize]
	if !ondisk.IsInodeBuffer(dip) {
		return ondisk.Corrupt("inode", where, "di_magic", "no inode at daddr %d offset %d to replay into", f.Blkno, f.BOffset)
	}
	if lsn := binary.BigEndian.Uint64(dip[ondisk.DinodeLSNOff:]); lsn != 0 && lsn != ^uint64(0) && ondisk.CompareLSN(ondisk.LSN(lsn), tx.LSN) > 0 {
		r.res.InodeSkipped++
		return nil
	}
	core := it.Regions[1]
	if len(core) != ondisk.LogDinodeSize {
		return ondisk.Corrupt("inode log item", where, "", "logged core of %d bytes (want %d)", len(core), ondisk.LogDinodeSize)
	}
	if err := ondisk.LogDinodeToDisk(core, tx.Order, dip, tx.LSN); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if int(dip[82])*8 >= isize-ondisk.DinodeV3CoreSize {
		return ondisk.Corrupt("inode log item", where, "di_forkoff", "fork offset %d outside the inode", dip[82])
	}
	dforkEnd := isize
	if dip[82] != 0 {
		dforkEnd = ondisk.DinodeV3CoreSize + int(dip[82])*8
	}
	dfork, afork := dip[ondisk.DinodeV3CoreSize:dforkEnd], dip[dforkEnd:]
	if f.Fields&ondisk.ILogDev != 0 {
		binary.BigEndian.PutUint32(dfork, f.Rdev)
	}
	next := 2
	put := func(fork []byte, flags uint32, data, ext, broot uint32, what string) error {
		if flags == 0 {
			return nil
		}
		if next >= len(it.Regions) {
			return ondisk.Corrupt("inode log item", where, "ilf_fields", "%s fork logged but no region holds it", what)
		}
		src := it.Regions[next]
		next++
		switch flags {
		case data, ext:
			if len(src) > len(fork) {
				return ondisk.Corrupt("inode log item", where, "", "%d bytes logged for a %s fork of %d", len(src), what, len(fork))
			}
			copy(fork, src)
		case broot:
			if err := ondisk.BmbtRootToDisk(src, fork); err != nil {
				return fmt.Errorf("%s: %s fork: %w", where, what, err)
			}
		default:
			return ondisk.Corrupt("inode log item", where, "ilf_fields", "%s fork fields 0x%x name more than one form", what, flags)
		}
		return nil
	}
	if err := put(dfork, f.Fields&ondisk.ILogDFork, ondisk.ILogDData, ondisk.ILogDExt, ondisk.ILogDBroot, "data"); err != nil {
		return err
	}
	if f.Fields&ondisk.ILogAFork != 0 && dip[82] == 0 {
		return ondisk.Corrupt("inode log item", where, "ilf_fields", "attribute fork logged for an inode without one")
	}
	if err := put(afork, f.Fields&ondisk.ILogAFork, ondisk.ILogAData, ondisk.ILogAExt, ondisk.ILogABroot, "attribute"); err != nil {
		return err
	}
	ondisk.SetCRC(dip, ondisk.DinodeCRCOff)
	d, err := ondisk.DecodeDinode(dip)
	if err == nil {
		err = d.Verify(dip, f.Ino, r.sb)
	}
	if err != nil {
		return fmt.Errorf("%s after replay: %w", where, err)
	}
	r.ov.write(daddr, buf)
	r.res.Inodes++
	return nil
}

// icreate initialises a new inode chunk as the kernel's allocator does:
// free v3 inodes with the logged generation, unless a later cancel record
// says the chunk's space was freed again.
func (r *replayer) icreate(tx *xlog.Transaction, it *xlog.Item) error {
	c, err := ondisk.DecodeICreateLog(it.Regions[0], tx.Order)
	if err != nil {
		return err
	}
	sb := r.sb
	where := fmt.Sprintf("AG %d block %d", c.AG, c.AGBno)
	switch {
	case c.AG >= sb.AGCount || uint64(c.AGBno)+uint64(c.Length) > uint64(sb.AGBlocks) || c.Length == 0:
		return ondisk.Corrupt("icreate log item", where, "", "chunk of %d blocks outside the AG", c.Length)
	// A chunk is 64 inodes, or a whole block when one holds more (64 KiB
	// blocks): the kernel allocates, and logs, at least one block.
	case c.ISize != uint32(sb.InodeSize) || c.Count == 0 || c.Count > max(ondisk.InodesPerChunk, uint32(sb.InoPBlock)) ||
		uint64(c.Count)*uint64(c.ISize) != uint64(c.Length)<<sb.BlockLog:
		return ondisk.Corrupt("icreate log item", where, "", "%d inodes of %d bytes in %d blocks do not match the filesystem", c.Count, c.ISize, c.Length)
	}
	daddr := sb.AGBToDaddr(c.AG, c.AGBno)
	n := int(c.Length) << (sb.BlockLog - ondisk.BBShift)
	if err := r.checkRange("icreate log item", int64(daddr), n); err != nil {
		return err
	}
	for k := range r.cancel {
		if uint64(k.daddr) < daddr+uint64(n) && uint64(k.daddr)+uint64(k.len) > daddr {
			r.res.Cancelled++
			return nil
		}
	}
	buf := make([]byte, n*ondisk.BBSize)
	isize := int(c.ISize)
	ino := sb.AGInoToIno(c.AG, c.AGBno<<sb.InoPBLog)
	uuid := r.metaUUID()
	be := binary.BigEndian
	for i := 0; i < int(c.Count); i++ {
		d := buf[i*isize : (i+1)*isize]
		be.PutUint16(d, ondisk.DinodeMagic)
		d[4] = 3
		be.PutUint32(d[92:], c.Gen)
		be.PutUint32(d[96:], ^uint32(0))
		be.PutUint64(d[152:], ino+uint64(i))
		copy(d[160:176], uuid[:])
		ondisk.SetCRC(d, ondisk.DinodeCRCOff)
	}
	r.ov.write(daddr, buf)
	r.res.ICreates++
	return nil
}

// recount sets the superblock's lazy counters from the AG headers, as the
// kernel does when it mounts a filesystem whose log was dirty (the
// checker's counters phase then verifies them against the trees).
func (r *replayer) recount() error {
	sb := r.sb
	var icount, ifree, fdblocks uint64
	for ag := uint32(0); ag < sb.AGCount; ag++ {
		agfB, err := r.ov.read(r.fs, r.fs.AGHeaderDaddr(ag, 1), int(sb.SectSize))
		if err != nil {
			return err
		}
		agf, err := ondisk.DecodeAGF(agfB)
		if err != nil {
			return fmt.Errorf("AG %d: %w", ag, err)
		}
		if err := agf.Verify(agfB, ag, sb); err != nil {
			return fmt.Errorf("AG %d after replay: %w", ag, err)
		}
		agiB, err := r.ov.read(r.fs, r.fs.AGHeaderDaddr(ag, 2), int(sb.SectSize))
		if err != nil {
			return err
		}
		agi, err := ondisk.DecodeAGI(agiB)
		if err != nil {
			return fmt.Errorf("AG %d: %w", ag, err)
		}
		if err := agi.Verify(agiB, ag, sb); err != nil {
			return fmt.Errorf("AG %d after replay: %w", ag, err)
		}
		fdblocks += uint64(agf.FreeBlks) + uint64(agf.FLCount) + uint64(agf.BtreeBlks)
		icount += uint64(agi.Count)
		ifree += uint64(agi.FreeCount)
		for _, b := range agi.Unlinked {
			if b != ^uint32(0) {
				r.res.UnlinkedInodes++
			}
		}
	}
	if n := r.res.UnlinkedInodes; n > 0 && !r.inMemory {
		// Files unlinked while still open: the kernel truncates and frees
		// them after recovery, which needs its allocator.
		return fmt.Errorf("%d AGI unlinked lists hold inodes that were deleted while still open; freeing them "+
			"needs the kernel: mount the filesystem once (nothing was written): %w", n, ErrUnsupported)
	}
	sbB, err := r.ov.read(r.fs, 0, int(sb.SectSize))
	if err != nil {
		return err
	}
	nsb, err := ondisk.DecodeSuperblock(sbB)
	if err != nil {
		return err
	}
	r.res.OldICount, r.res.OldIFree, r.res.OldFDBlocks = nsb.ICount, nsb.IFree, nsb.FDBlocks
	if nsb.ICount == icount && nsb.IFree == ifree && nsb.FDBlocks == fdblocks && nsb.FeaturesLogIncompat == 0 {
		return nil
	}
	r.res.CountersChanged = nsb.ICount != icount || nsb.IFree != ifree || nsb.FDBlocks != fdblocks
	nsb.ICount, nsb.IFree, nsb.FDBlocks = icount, ifree, fdblocks
	// Log-incompatible features guard log contents from older kernels; a
	// clean log holds none, so they are cleared, as the kernel does.
	nsb.FeaturesLogIncompat = 0
	nsb.Encode(sbB) // recomputes the CRC
	r.ov.write(0, sbB)
	return nil
}

// flush writes every replayed sector, in disk order, coalescing runs.
func (r *replayer) flush() error {
	keys := make([]uint64, 0, len(r.ov))
	for k := range r.ov {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// Nearby sectors go out in one write with the unchanged ones between
	// (read back through the overlay): every write through the undo
	// journal costs a journal sync.
	const gap, most = 128, 2048
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]-keys[j-1] <= gap && keys[j]-keys[i] < most {
			j++
		}
		start, n := keys[i], int(keys[j-1]-keys[i]+1)
		buf, err := r.ov.read(r.fs, start, n*ondisk.BBSize)
		if err != nil {
			return err
		}
		if _, err := r.fs.Dev.WriteAt(buf, int64(start)<<ondisk.BBShift); err != nil {
			return fmt.Errorf("%s: writing daddr %d: %w", r.fs.Name(), start, err)
		}
		r.res.Sectors += j - i
		i = j
	}
	return nil
}

// overlay holds replayed sectors (512-byte basic blocks by daddr) until they
// are written, so buffers of different lengths over the same blocks see
// each other's changes.
type overlay map[uint64][]byte

func (o overlay) read(fs *xfs.FS, daddr uint64, n int) ([]byte, error) {
	const bb = ondisk.BBSize
	buf := make([]byte, n)
	// Sectors already replayed come from the overlay; runs of the others
	// from the device.
	for i := 0; i < n/bb; {
		if s, ok := o[daddr+uint64(i)]; ok {
			copy(buf[i*bb:], s)
			i++
			continue
		}
		j := i + 1
		for j < n/bb && o[daddr+uint64(j)] == nil {
			j++
		}
		if err := fs.ReadDaddrInto(daddr+uint64(i), buf[i*bb:j*bb]); err != nil {
			return nil, err
		}
		i = j
	}
	return buf, nil
}

func (o overlay) write(daddr uint64, b []byte) {
	for i := 0; i+ondisk.BBSize <= len(b); i += ondisk.BBSize {
		k := daddr + uint64(i/ondisk.BBSize)
		if s, ok := o[k]; ok {
			copy(s, b[i:]) // the same sector again: no new allocation
		} else {
			o[k] = slices.Clone(b[i : i+ondisk.BBSize])
		}
	}
}
