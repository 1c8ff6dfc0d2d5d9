package xlog

import (
	"encoding/binary"
	"fmt"

	"xfskit/ondisk"
)

// Item is one logged item of a transaction: its regions in order, the first
// being the item's format structure (xfs_buf_log_format and friends), whose
// second 16-bit word says how many regions the item has.
type Item struct {
	Type    uint16
	Regions [][]byte
	total   int
}

// Transaction is a reassembled log transaction (on v5 kernels, one CIL
// checkpoint).
type Transaction struct {
	TID    uint32
	LSN    ondisk.LSN // LSN of the record holding its start: the replay LSN
	Order  binary.ByteOrder
	Header ondisk.TransHeader
	Items  []*Item
	hdr    []byte // the transaction header as far as read
}

// Assembler rebuilds transactions from log operations in log order, as
// recovery does: a start op opens a transaction, its first payload is the
// transaction header, every further payload is an item region (a payload
// flagged WAS_CONT continues the previous one), and a commit op completes
// it. Ops of transactions that started before the tail are skipped, and
// transactions without a commit are never returned.
type Assembler struct {
	open      map[uint32]*Transaction
	Committed []*Transaction
}

// NewAssembler returns an empty assembler.
func NewAssembler() *Assembler { return &Assembler{open: map[uint32]*Transaction{}} }

// Uncommitted is the number of transactions started but not committed.
func (a *Assembler) Uncommitted() int { return len(a.open) }

// AddRecord feeds the operations of one record (LSN lsn, payload byte order
// bo) to the assembler. where names the record for errors.
func (a *Assembler) AddRecord(lsn ondisk.LSN, bo binary.ByteOrder, ops []ondisk.LogOp, where string) error {
	for i, op := range ops {
		if err := a.addOp(lsn, bo, op); err != nil {
			return fmt.Errorf("%s: op %d (tid 0x%08x, flags %s): %w", where, i, op.Header.TID, op.Header.FlagString(), err)
		}
	}
	return nil
}

func (a *Assembler) addOp(lsn ondisk.LSN, bo binary.ByteOrder, op ondisk.LogOp) error {
	h := op.Header
	flags := h.Flags &^ ondisk.LogEndTrans
	if flags&ondisk.LogWasContTrans != 0 {
		flags &^= ondisk.LogContinueTrans
	}
	t := a.open[h.TID]
	if t == nil {
		if flags&ondisk.LogStartTrans == 0 {
			// Part of a transaction that began before the tail (or an
			// unmount record): nothing to replay.
			return nil
		}
		if len(op.Data) != 0 {
			return corruptOp("start op carries %d bytes", len(op.Data))
		}
		a.open[h.TID] = &Transaction{TID: h.TID, LSN: lsn, Order: bo}
		return nil
	}
	switch flags {
	case 0, ondisk.LogContinueTrans:
		return t.add(op.Data)
	case ondisk.LogWasContTrans:
		return t.addCont(op.Data)
	case ondisk.LogCommitTrans:
		if n := len(t.hdr); n != 0 && n < ondisk.TransHeaderSize {
			return corruptOp("transaction committed with a partial header (%d bytes)", n)
		}
		if err := t.finish(); err != nil {
			return err
		}
		delete(a.open, h.TID)
		a.Committed = append(a.Committed, t)
		return nil
	case ondisk.LogUnmountTrans:
		return nil
	case ondisk.LogStartTrans:
		return corruptOp("second start of an open transaction")
	}
	return corruptOp("unexpected op flags 0x%02x", h.Flags)
}

func corruptOp(format string, args ...any) error {
	return ondisk.Corrupt("log op", "", "oh_flags", format, args...)
}

// add appends a new region (or the transaction header).
func (t *Transaction) add(p []byte) error {
	if len(t.hdr) < ondisk.TransHeaderSize {
		return t.addHeader(p)
	}
	var it *Item
	if n := len(t.Items); n > 0 && (t.Items[n-1].total == 0 || len(t.Items[n-1].Regions) < t.Items[n-1].total) {
		it = t.Items[n-1]
		if it.total == 0 {
			return corruptOp("item's format region too short (%d bytes) to say its region count", len(it.Regions[0]))
		}
	} else {
		it = &Item{}
		t.Items = append(t.Items, it)
	}
	// Capacity limited so a continuation copies rather than overwriting the
	// record data that follows.
	it.Regions = append(it.Regions, p[:len(p):len(p)])
	return it.settle(t.Order)
}

// addCont appends a continued payload to the last region.
func (t *Transaction) addCont(p []byte) error {
	if len(t.Items) == 0 {
		return t.addHeader(p)
	}
	it := t.Items[len(t.Items)-1]
	last := len(it.Regions) - 1
	it.Regions[last] = append(it.Regions[last], p...)
	return it.settle(t.Order)
}

func (t *Transaction) addHeader(p []byte) error {
	if len(t.hdr)+len(p) > ondisk.TransHeaderSize {
		return corruptOp("transaction header of %d bytes (want %d)", len(t.hdr)+len(p), ondisk.TransHeaderSize)
	}
	t.hdr = append(t.hdr, p...)
	if len(t.hdr) == ondisk.TransHeaderSize {
		th, err := ondisk.DecodeTransHeader(t.hdr, t.Order)
		if err != nil {
			return err
		}
		t.Header = th
	}
	return nil
}

// settle learns the item's type and region count once its format region
// holds them.
func (it *Item) settle(bo binary.ByteOrder) error {
	if it.total == 0 && len(it.Regions[0]) >= 4 {
		it.Type = bo.Uint16(it.Regions[0])
		n := int(bo.Uint16(it.Regions[0][2:]))
		if n == 0 || n > ondisk.LogMaxRegionsInItem {
			return corruptOp("%s item announces %d regions (1..%d allowed)", ondisk.LogItemName(it.Type), n, ondisk.LogMaxRegionsInItem)
		}
		it.total = n
	}
	if it.total != 0 && len(it.Regions) > it.total {
		return corruptOp("%s item has more than its %d regions", ondisk.LogItemName(it.Type), it.total)
	}
	return nil
}

// finish checks a committed transaction is whole.
func (t *Transaction) finish() error {
	for i, it := range t.Items {
		if it.total == 0 || len(it.Regions) != it.total {
			return corruptOp("item %d (%s) has %d of its %d regions", i, ondisk.LogItemName(it.Type), len(it.Regions), it.total)
		}
	}
	return nil
}

// Transactions reassembles the committed transactions between the tail and
// head of st, in log order. uncommitted counts transactions cut off by the
// head (not replayed, as the kernel does). A record that fails its CRC or
// does not parse is an error: the log cannot be replayed past it.
func (l *Log) Transactions(st *State) (txs []*Transaction, uncommitted int, err error) {
	if st.Clean {
		return nil, 0, nil
	}
	a := NewAssembler()
	err = l.Walk(st.TailBlock, st.HeadBlock, func(r *Record) error {
		return a.AddRecord(r.Header.LSN, r.Header.ByteOrder(), r.Ops, l.where(int64(r.Block)))
	})
	if err != nil {
		return nil, 0, err
	}
	return a.Committed, a.Uncommitted(), nil
}
