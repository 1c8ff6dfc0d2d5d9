package xlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// mountOpts loop-mounts img with extra mount options; unmounted at cleanup.
func mountOpts(t *testing.T, img, opts string) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	o := "loop"
	if opts != "" {
		o += "," + opts
	}
	oracle.Run(t, "mount", "-t", "xfs", "-o", o, img, mnt)
	t.Cleanup(func() { oracle.Unmount(t, mnt) })
	oracle.MustBeMounted(t, mnt)
	return mnt
}

// fill creates n small files under mnt/dir, syncing every batch files.
func fill(t *testing.T, mnt, dir string, n, batch int) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	d := filepath.Join(mnt, dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if batch > 0 && (i+1)%batch == 0 {
			oracle.Run(t, "sync", "-f", d)
		}
	}
}

// fsyncFiles writes and fsyncs n files, one log force (record) each.
func fsyncFiles(t *testing.T, mnt string, n int) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(mnt, fmt.Sprintf("sync%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, 8192)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// crash shuts the filesystem down without unmounting (log flushed first, so
// committed transactions stay in the log unreplayed), then unmounts.
func crash(t *testing.T, mnt string) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	oracle.Run(t, "umount", mnt)
}

var logprintState = regexp.MustCompile(`log tail: (\d+) head: (\d+) state: <(\w+)>`)

// logprint returns what `xfs_logprint -t` says about tail, head and state.
func logprint(t *testing.T, img string) (tail, head uint32, state string) {
	t.Helper()
	out, _ := oracle.RunStatus("xfs_logprint", "-t", img)
	m := logprintState.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tail/head in xfs_logprint -t output:\n%.2000s", out)
	}
	tl, _ := strconv.Atoi(m[1])
	hd, _ := strconv.Atoi(m[2])
	return uint32(tl), uint32(hd), m[3]
}

// checkAgainstLogprint compares our state with xfs_logprint's and with the
// cycle stamps around the head.
func checkAgainstLogprint(t *testing.T, img string, l *Log, st *State) {
	t.Helper()
	tail, head, state := logprint(t, img)
	wantClean := state == "CLEAN"
	if st.TailBlock != tail || st.HeadBlock != head || st.Clean != wantClean {
		t.Fatalf("ours: %v; xfs_logprint -t: tail %d head %d %s", st, tail, head, state)
	}
	// The block before the head carries the head cycle (or, at block 0,
	// the end of the log carries the previous one).
	prev := l.wrap(int64(st.HeadBlock) - 1)
	c, err := l.cycle(prev)
	if err != nil {
		t.Fatal(err)
	}
	want := st.HeadCycle
	if st.HeadBlock == 0 {
		want--
	}
	if c != want {
		t.Fatalf("block %d before head has cycle %d, head cycle is %d", prev, c, st.HeadCycle)
	}
}

func repairExit(t *testing.T, img string) (string, int) {
	t.Helper()
	// Without -n, xfs_repair refuses a dirty log with exit 2 before
	// changing anything; run it on a copy anyway.
	cp := filepath.Join(t.TempDir(), "copy.img")
	oracle.Run(t, "cp", "--sparse=always", img, cp)
	return oracle.RunStatus("xfs_repair", cp)
}

func TestMkfsLogClean(t *testing.T) {
	img := oracle.Mkfs(t, "300m")
	l, st, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Clean || !st.Unmount || st.Zeroed || st.HeadBlock != 2 || st.TailBlock != 2 || st.HeadCycle != 1 || st.TailCycle != 1 ||
		st.LastRecordBlock != 0 || st.LastRecordLSN != ondisk.MakeLSN(1, 0) || st.Records != 0 || st.Torn != nil {
		t.Fatalf("fresh mkfs log: %+v", st)
	}
	checkAgainstLogprint(t, img, l, st)
}

func TestKernelCleanUnmount(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := mountOpts(t, img, "")
	fill(t, mnt, "d", 300, 100)
	oracle.Run(t, "umount", mnt)
	l, st, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Clean || !st.Unmount || st.HeadCycle != 1 || st.HeadBlock <= 2 || st.Records != 0 {
		t.Fatalf("after clean unmount: %+v", st)
	}
	// The kernel's unmount record points its tail at the previous record,
	// not at itself; clean is decided by the record at the head.
	if st.LastTailLSN == st.LastRecordLSN {
		t.Logf("note: unmount record tail equals its own lsn %v", st.LastRecordLSN)
	}
	checkAgainstLogprint(t, img, l, st)
	if out, code := oracle.Repair(t, img); code != 0 {
		t.Fatalf("xfs_repair -n on cleanly unmounted image exited %d:\n%s", code, out)
	}
}

// TestKernelDirtyLog makes a log with unreplayed transactions, checks it is
// dirty the way xfs_logprint and xfs_repair see it, walks its records, then
// checks that CRC damage is reported with its block, and that a kernel
// replay leaves it clean.
func TestKernelDirtyLog(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := mountOpts(t, img, "")
	fill(t, mnt, "d", 200, 0)
	fsyncFiles(t, mnt, 16)
	crash(t, mnt)

	l, st, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Clean || st.Unmount || st.Torn != nil || st.Records < 10 || st.HeadCycle != 1 {
		t.Fatalf("after shutdown: %+v", st)
	}
	checkAgainstLogprint(t, img, l, st)
	if out, code := repairExit(t, img); code != 2 || !strings.Contains(out, "needs to") {
		t.Fatalf("xfs_repair on the dirty log exited %d (want 2):\n%s", code, out)
	}
	// Our record count matches the headers xfs_logprint lists in range.
	want := 0
	hdr := regexp.MustCompile(`^\s*(\d+) HEADER Cycle 1 `)
	for _, line := range strings.Split(oracle.Run(t, "xfs_logprint", "-d", img), "\n") {
		if m := hdr.FindStringSubmatch(line); m != nil {
			b, _ := strconv.Atoi(m[1])
			if uint32(b) >= st.TailBlock && uint32(b) < st.HeadBlock {
				want++
			}
		}
	}
	var recs []*Record
	if err := l.Walk(st.TailBlock, st.HeadBlock, func(r *Record) error {
		if !r.CRCChecked {
			t.Errorf("record at %d: kernel record without CRC", r.Block)
		}
		if len(r.Ops) != int(r.Header.NumLogOps) {
			t.Errorf("record at %d: %d ops, header says %d", r.Block, len(r.Ops), r.Header.NumLogOps)
		}
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != st.Records || len(recs) != want {
		t.Fatalf("walked %d records, state says %d, xfs_logprint lists %d", len(recs), st.Records, want)
	}
	if recs[0].Block != st.TailBlock || recs[0].Ops[0].Header.Flags&ondisk.LogStartTrans == 0 {
		t.Fatalf("first record at %d does not start a transaction: %+v", recs[0].Block, recs[0].Ops[0].Header)
	}
	if th, err := ondisk.DecodeTransHeader(recs[0].Ops[1].Data, recs[0].Header.ByteOrder()); err != nil || th.NumItems == 0 {
		t.Fatalf("first transaction header: %+v %v", th, err)
	}
	if err := l.Verify(st); err != nil {
		t.Fatal(err)
	}

	t.Run("crc-damage", func(t *testing.T) {
		// Damage the data of the first record (older than the last eight,
		// so head finding is unaffected) and of the last one.
		dmg := filepath.Join(t.TempDir(), "dmg.img")
		oracle.Run(t, "cp", "--sparse=always", img, dmg)
		first, last := recs[0], recs[len(recs)-1]
		f, err := os.OpenFile(dmg, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*Record{first, last} {
			off := int64(l.Daddr(r.Block)+uint64(r.HeaderBlocks))*512 + 200
			b := make([]byte, 1)
			f.ReadAt(b, off)
			b[0] ^= 0x5a
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		dl, dst, err := findImg(t, dmg)
		if err != nil {
			t.Fatal(err)
		}
		// The damaged last record is a torn write: the head moves back.
		if dst.Torn == nil || dst.Torn.Block != last.Block || dst.HeadBlock != last.Block || dst.Torn.OrigHead != st.HeadBlock ||
			!strings.Contains(dst.Torn.Err.Error(), fmt.Sprintf("log block %d ", last.Block)) {
			t.Fatalf("damaged last record: state %v torn %+v", dst, dst.Torn)
		}
		err = dl.Verify(dst)
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.Field != "h_crc" || !strings.Contains(err.Error(), fmt.Sprintf("log block %d (daddr %d)", first.Block, dl.Daddr(first.Block))) {
			t.Fatalf("damaged first record: Verify = %v", err)
		}
		werr := dl.Walk(dst.TailBlock, dst.HeadBlock, func(*Record) error { return nil })
		if werr == nil || !strings.Contains(werr.Error(), fmt.Sprintf("log block %d ", first.Block)) {
			t.Fatalf("Walk over damaged record: %v", werr)
		}
	})

	// Replay by mounting; the log is clean afterwards.
	mnt2 := mountOpts(t, img, "")
	oracle.Run(t, "umount", mnt2)
	l2, st2, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Clean || st2.HeadBlock <= st.HeadBlock {
		t.Fatalf("after replay: %v (before: %v)", st2, st)
	}
	checkAgainstLogprint(t, img, l2, st2)
}

// TestWrappedLog fills the smallest log mkfs allows past its physical end,
// then checks clean and dirty states against xfs_logprint.
func TestWrappedLog(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m", "--unsupported", "-l", "size=1368b")
	// How much log a workload takes varies with the kernel's batching:
	// keep adding files until the head has wrapped (a few rounds at most).
	var l *Log
	var st *State
	for round := 0; round < 4; round++ {
		mnt := mountOpts(t, img, "logbsize=256k")
		fill(t, mnt, fmt.Sprintf("r%d-", round), 16000, 2000)
		oracle.Run(t, "umount", mnt)
		var err error
		if l, st, err = findImg(t, img); err != nil {
			t.Fatal(err)
		}
		if st.HeadCycle >= 2 {
			break
		}
	}
	if !st.Clean || st.HeadCycle < 2 {
		t.Fatalf("after wrapping and unmount: %v (want clean, cycle >= 2)", st)
	}
	checkAgainstLogprint(t, img, l, st)
	t.Logf("clean wrapped log: %v", st)

	mnt := mountOpts(t, img, "")
	fill(t, mnt, "b", 3000, 500)
	fsyncFiles(t, mnt, 12)
	crash(t, mnt)
	l, st, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Clean || st.HeadCycle < 2 || st.Records == 0 {
		t.Fatalf("after wrapping and shutdown: %v", st)
	}
	checkAgainstLogprint(t, img, l, st)
	t.Logf("dirty wrapped log: %v", st)
	n := 0
	if err := l.Walk(st.TailBlock, st.HeadBlock, func(r *Record) error {
		n++
		if r.Header.Cycle != st.TailCycle && r.Header.Cycle != st.TailCycle+1 {
			t.Errorf("record at %d has cycle %d, tail cycle %d", r.Block, r.Header.Cycle, st.TailCycle)
		}
		return nil
	}); err != nil || n != st.Records {
		t.Fatalf("walk: %d records (state %d): %v", n, st.Records, err)
	}
	if out, code := repairExit(t, img); code != 2 {
		t.Fatalf("xfs_repair on wrapped dirty log exited %d (want 2):\n%s", code, out)
	}
}
