package xlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
)

// logprintTx is one transaction as xfs_logprint -t lists it.
type logprintTx struct {
	tid   uint32
	items []string // "BUF daddr/len" and "INODE ino", in order
}

var (
	lpTrans = regexp.MustCompile(`^TRANS: tid:0x([0-9a-f]+) `)
	lpBuf   = regexp.MustCompile(`^\s+BUF:\s+#regs:\d+\s+start blkno:0x([0-9a-f]+)\s+len:(\d+)`)
	lpInode = regexp.MustCompile(`^\s+INODE:\s+#regs:\d+\s+ino:0x([0-9a-f]+)`)
)

func parseLogprint(t *testing.T, out string) []logprintTx {
	t.Helper()
	var txs []logprintTx
	hex := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, line := range strings.Split(out, "\n") {
		if m := lpTrans.FindStringSubmatch(line); m != nil {
			txs = append(txs, logprintTx{tid: uint32(hex(m[1]))})
		} else if m := lpBuf.FindStringSubmatch(line); m != nil && len(txs) > 0 {
			txs[len(txs)-1].items = append(txs[len(txs)-1].items, fmt.Sprintf("BUF %d/%s", hex(m[1]), m[2]))
		} else if m := lpInode.FindStringSubmatch(line); m != nil && len(txs) > 0 {
			txs[len(txs)-1].items = append(txs[len(txs)-1].items, fmt.Sprintf("INODE %d", hex(m[1])))
		}
	}
	return txs
}

// TestListMatchesLogprint: the transactional view of a kernel's dirty log
// lists the same transactions, with the same buffer and inode items in the
// same order, as xfs_logprint -t.
func TestListMatchesLogprint(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m", "-m", "rmapbt=1")
	mnt := mountOpts(t, img, "")
	fill(t, mnt, "d", 300, 100)
	oracle.Run(t, "setfattr", "-n", "user.a", "-v", "b", filepath.Join(mnt, "d", "f00001"))
	if err := os.Remove(filepath.Join(mnt, "d", "f00002")); err != nil {
		t.Fatal(err)
	}
	fsyncFiles(t, mnt, 4)
	crash(t, mnt)

	l, _, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	want := parseLogprint(t, oracle.Run(t, "xfs_logprint", "-t", img))
	if ls.Clean || len(ls.Transactions) < 2 || len(ls.Transactions) != len(want) {
		t.Fatalf("ours: %d transactions (%s); xfs_logprint -t: %d", len(ls.Transactions), ls.State, len(want))
	}
	for i, tx := range ls.Transactions {
		var got []string
		for _, it := range tx.Items {
			switch it.Type {
			case "BUF":
				got = append(got, fmt.Sprintf("BUF %d/%d", it.Daddr, it.Len))
			case "INODE":
				got = append(got, fmt.Sprintf("INODE %d", it.Ino))
			}
		}
		if tx.TID != want[i].tid || !slices.Equal(got, want[i].items) {
			t.Fatalf("transaction %d: ours tid 0x%x %v\nxfs_logprint: tid 0x%x %v", i, tx.TID, got, want[i].tid, want[i].items)
		}
	}
	var text bytes.Buffer
	ls.WriteText(&text)
	if n := ls.Items["INODE"]; n < 300 || !strings.Contains(text.String(), fmt.Sprintf("%d INODE", n)) {
		t.Fatalf("%d inode items; text:\n%.2000s", n, text.String())
	}
}
