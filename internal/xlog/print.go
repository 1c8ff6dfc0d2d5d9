package xlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"

	"xfskit/ondisk"
)

// Listing is the transactional view of a log (what xfs_logprint -t shows):
// where the log is, its state, and every committed transaction between
// tail and head with its items.
type Listing struct {
	Start        uint64         `json:"daddr"`  // daddr of log block 0
	Blocks       uint32         `json:"blocks"` // 512-byte blocks
	State        string         `json:"state"`
	Clean        bool           `json:"clean"`
	Torn         string         `json:"torn,omitempty"`
	Transactions []TxListing    `json:"transactions"`
	Uncommitted  int            `json:"uncommitted"` // cut off by the head: not replayed
	Items        map[string]int `json:"item_counts"`
}

// TxListing is one committed transaction.
type TxListing struct {
	LSN   string        `json:"lsn"` // of the record holding its start
	TID   uint32        `json:"tid"`
	Type  uint32        `json:"type"` // transaction header type (checkpoint on v5)
	Items []ItemListing `json:"items"`
}

// ItemListing is one log item, with the fields that identify what it
// changes. Items that do not decode are listed with Error set.
type ItemListing struct {
	Type    string `json:"type"` // BUF, INODE, ICREATE, EFI, EFD, ...
	Regions int    `json:"regions"`
	// BUF
	Daddr   int64  `json:"daddr,omitempty"`
	Len     int    `json:"len,omitempty"` // 512-byte blocks
	Flags   uint32 `json:"flags,omitempty"`
	BufType string `json:"buf_type,omitempty"`
	// INODE
	Ino    uint64 `json:"ino,omitempty"`
	Fields uint32 `json:"fields,omitempty"`
	// ICREATE
	AG    uint32 `json:"ag,omitempty"`
	AGBno uint32 `json:"agbno,omitempty"`
	Count uint32 `json:"count,omitempty"`
	// intents and done items
	ID      uint64 `json:"id,omitempty"`
	Extents uint32 `json:"extents,omitempty"`
	Error   string `json:"error,omitempty"`
}

// bufTypes names the buffer types a buffer item's flags carry (XFS_BLFT_*).
var bufTypes = []string{"unknown", "user dquot", "project dquot", "group dquot", "btree", "AGF", "AGFL", "AGI",
	"inode", "symlink", "dir block", "dir data", "dir free", "dir leaf1", "dir leafn", "da node", "attr leaf",
	"attr remote", "superblock", "rt bitmap", "rt summary"}

// List reads the log's transactions between tail and head.
func (l *Log) List() (*Listing, error) {
	ls := &Listing{Start: l.start, Blocks: uint32(l.blocks), Items: map[string]int{}}
	st, err := l.Find()
	if err != nil {
		return nil, err
	}
	ls.State, ls.Clean = st.String(), st.Clean
	if st.Torn != nil {
		ls.Torn = st.Torn.Err.Error()
	}
	txs, uncommitted, err := l.Transactions(st)
	if err != nil {
		return nil, err
	}
	ls.Uncommitted = uncommitted
	ls.Transactions = []TxListing{}
	for _, tx := range txs {
		tl := TxListing{LSN: tx.LSN.String(), TID: tx.TID, Type: tx.Header.Type}
		for _, it := range tx.Items {
			il := describeItem(it, tx.Order)
			ls.Items[il.Type]++
			tl.Items = append(tl.Items, il)
		}
		ls.Transactions = append(ls.Transactions, tl)
	}
	return ls, nil
}

func describeItem(it *Item, bo binary.ByteOrder) ItemListing {
	il := ItemListing{Type: ondisk.LogItemName(it.Type), Regions: len(it.Regions)}
	p := it.Regions[0]
	var err error
	switch it.Type {
	case ondisk.LogItemBuf:
		var f *ondisk.BufLogFormat
		if f, err = ondisk.DecodeBufLogFormat(p, bo); err == nil {
			il.Daddr, il.Len, il.Flags = f.Blkno, int(f.Len), uint32(f.Flags)
			if t := f.BufLogType(); t < len(bufTypes) {
				il.BufType = bufTypes[t]
			} else {
				il.BufType = fmt.Sprintf("type %d", t)
			}
		}
	case ondisk.LogItemInode:
		var f *ondisk.InodeLogFormat
		if f, err = ondisk.DecodeInodeLogFormat(p, bo); err == nil {
			il.Ino, il.Fields, il.Daddr, il.Len = f.Ino, f.Fields, f.Blkno, int(f.Len)
		}
	case ondisk.LogItemICreate:
		var f *ondisk.ICreateLog
		if f, err = ondisk.DecodeICreateLog(p, bo); err == nil {
			il.AG, il.AGBno, il.Count, il.Len = f.AG, f.AGBno, f.Count, int(f.Length)
		}
	default:
		// Intents and done items: a count of extents at 4 and an id at 8.
		if il.ID, err = ondisk.LogItemID(p, bo); err == nil {
			il.Extents = bo.Uint32(p[4:])
		}
	}
	if err != nil {
		il.Error = err.Error()
	}
	return il
}

// inodeFields names the parts of an inode an inode item logs.
func inodeFields(f uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{{ondisk.ILogCore, "core"}, {ondisk.ILogDData, "data-local"}, {ondisk.ILogDExt, "data-extents"},
		{ondisk.ILogDBroot, "data-btree"}, {ondisk.ILogDev, "dev"}, {ondisk.ILogAData, "attr-local"},
		{ondisk.ILogAExt, "attr-extents"}, {ondisk.ILogABroot, "attr-btree"}, {ondisk.ILogDOwner, "data-owner"},
		{ondisk.ILogAOwner, "attr-owner"}}
	var s []string
	for _, n := range names {
		if f&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	return strings.Join(s, ",")
}

// WriteText prints the listing, one line per item.
func (ls *Listing) WriteText(w io.Writer) {
	fmt.Fprintf(w, "log: daddr %d, %d blocks; %s\n", ls.Start, ls.Blocks, ls.State)
	if ls.Torn != "" {
		fmt.Fprintf(w, "torn last write (dropped, as the kernel does): %s\n", ls.Torn)
	}
	for _, tx := range ls.Transactions {
		fmt.Fprintf(w, "\ntransaction at LSN %s, tid 0x%x: %d items\n", tx.LSN, tx.TID, len(tx.Items))
		for _, it := range tx.Items {
			fmt.Fprintf(w, "  %-8s", it.Type)
			switch {
			case it.Error != "":
				fmt.Fprintf(w, "undecodable: %s", it.Error)
			case it.Type == "BUF":
				fmt.Fprintf(w, "daddr %d len %d flags 0x%x (%s)", it.Daddr, it.Len, it.Flags, it.BufType)
			case it.Type == "INODE":
				fmt.Fprintf(w, "ino %d (0x%x) at daddr %d: %s", it.Ino, it.Ino, it.Daddr, inodeFields(it.Fields))
			case it.Type == "ICREATE":
				fmt.Fprintf(w, "AG %d agbno %d: %d inodes in %d blocks", it.AG, it.AGBno, it.Count, it.Len)
			default:
				fmt.Fprintf(w, "id 0x%x, %d extents", it.ID, it.Extents)
			}
			fmt.Fprintf(w, ", %d regions\n", it.Regions)
		}
	}
	if ls.Uncommitted > 0 {
		fmt.Fprintf(w, "\n%d uncommitted transactions cut off by the head (not replayed)\n", ls.Uncommitted)
	}
	fmt.Fprintf(w, "\n%d transactions", len(ls.Transactions))
	if len(ls.Items) > 0 {
		var parts []string
		for _, t := range []string{"BUF", "INODE", "ICREATE"} {
			if n := ls.Items[t]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, t))
			}
		}
		var others []string
		for t := range ls.Items {
			if t != "BUF" && t != "INODE" && t != "ICREATE" {
				others = append(others, t)
			}
		}
		sort.Strings(others)
		for _, t := range others {
			parts = append(parts, fmt.Sprintf("%d %s", ls.Items[t], t))
		}
		fmt.Fprintf(w, ": %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
}
