package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"xfskit/internal/imagetree"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// intentTx is a transaction holding intent items of the given types, each
// with its own id.
func intentTx(types ...uint16) *xlog.Transaction {
	tx := &xlog.Transaction{LSN: ondisk.MakeLSN(1, 2), Order: binary.LittleEndian}
	for i, t := range types {
		p := make([]byte, 16)
		if t == ondisk.LogItemEFI { // one extent: blocks 1000+i, 8 of them
			p = make([]byte, 32)
			binary.LittleEndian.PutUint32(p[4:], 1)
			binary.LittleEndian.PutUint64(p[16:], uint64(1000+i))
			binary.LittleEndian.PutUint32(p[24:], 8)
		}
		binary.LittleEndian.PutUint16(p, t)
		binary.LittleEndian.PutUint64(p[8:], uint64(100+i))
		tx.Items = append(tx.Items, &xlog.Item{Type: t, Regions: [][]byte{p}})
	}
	return tx
}

// TestInMemoryIntentPolicy: InMemory leaves unfinished free-space, rmap
// and refcount intents (and quota items) undone, but refuses intents that
// would still change a file; Replay refuses them all.
func TestInMemoryIntentPolicy(t *testing.T) {
	quota := intentTx()
	dq := make([]byte, 16)
	binary.LittleEndian.PutUint16(dq, ondisk.LogItemDquot)
	quota.Items = append(quota.Items, &xlog.Item{Type: ondisk.LogItemDquot, Regions: [][]byte{dq}})
	for _, tc := range []struct {
		name       string
		tx         *xlog.Transaction
		inMemory   bool
		refused    string // "" = accepted
		unfinished []string
	}{
		{"efi-rui-cui in memory", intentTx(ondisk.LogItemEFI, ondisk.LogItemEFI, ondisk.LogItemRUI, ondisk.LogItemCUI), true, "", []string{"1 CUI", "1 RUI", "2 EFI"}},
		{"efi replayed in place", intentTx(ondisk.LogItemEFI), false, "unfinished intents (1 EFI)", nil},
		{"efi only in memory", intentTx(ondisk.LogItemEFI, ondisk.LogItemEFI), true, "", []string{"2 EFI"}},
		{"bui in memory", intentTx(ondisk.LogItemEFI, ondisk.LogItemBUI), true, "would still change files (1 BUI)", nil},
		{"attri in memory", intentTx(ondisk.LogItemATTRI), true, "would still change files (1 ATTRI)", nil},
		{"xmi in memory", intentTx(ondisk.LogItemXMI), true, "would still change files (1 XMI)", nil},
		{"finished bui", intentTx(ondisk.LogItemBUI, ondisk.LogItemBUD), true, "", nil},
		{"quota in memory", quota, true, "", nil},
		{"quota replayed in place", quota, false, "quota", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "finished bui" {
				// The done item carries its intent's id.
				binary.LittleEndian.PutUint64(tc.tx.Items[1].Regions[0][8:], 100)
			}
			r := &replayer{res: &Result{}, cancel: map[bufKey]int{}, inMemory: tc.inMemory}
			err := r.pass1([]*xlog.Transaction{tc.tx})
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.refused) || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.refused)
			}
			if err == nil && !slices.Equal(r.res.Unfinished, tc.unfinished) {
				t.Errorf("unfinished %q, want %q", r.res.Unfinished, tc.unfinished)
			}
			if tc.name == "quota in memory" && r.res.QuotaSkipped != 1 {
				t.Errorf("quota items skipped: %d", r.res.QuotaSkipped)
			}
			if tc.name == "efi-rui-cui in memory" {
				want := []ondisk.FreeExtent{{Start: 1000, Len: 8}, {Start: 1001, Len: 8}}
				if !slices.Equal(r.res.PendingFree, want) || r.res.OnlyFrees {
					t.Errorf("pending free %v (want %v), only frees %v", r.res.PendingFree, want, r.res.OnlyFrees)
				}
			}
			if tc.name == "efi only in memory" && (!r.res.OnlyFrees || len(r.res.PendingFree) != 2) {
				t.Errorf("EFIs alone: only frees %v, pending %v", r.res.OnlyFrees, r.res.PendingFree)
			}
		})
	}
}

// TestInMemoryMatchesKernel: the filesystem InMemory shows is the one the
// kernel's recovery leaves (every file, as a tree), the image is not
// written, and the recovered device refuses writes. A file deleted while
// open stays on its unlinked list and is nowhere in the tree.
func TestInMemoryMatchesKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m", "-m", "rmapbt=1,reflink=1")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	oracle.Run(t, "sync", "-f", mnt)
	workload(t, mnt, "b")
	logtest.Crash(t, mnt, true)
	if st := dirty(t, img); st.Clean {
		t.Fatalf("the crash left a clean log: %v", st)
	}
	before := oracle.FileHash(t, img)

	base, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	dev, res, err := InMemory(base.Dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Transactions == 0 || !res.InMemory || res.UnlinkedInodes == 0 {
		t.Fatalf("want transactions replayed and an unlinked list left: %+v", *res)
	}
	if _, err := dev.WriteAt(make([]byte, 512), 0); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to the recovered device: %v", err)
	}
	rfs, err := xfs.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := imagetree.FromFS(rfs, treecmp.Options{})
	rfs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("InMemory wrote the image")
	}
	oracle.Unmount(t, oracle.Mount(t, img, false)) // the kernel's own recovery
	kernel := snapshot(t, img)
	if kernel.Lookup("a/big") == nil || kernel.Lookup("b/fragmented") == nil {
		t.Fatal("the kernel's recovery lost the workload")
	}
	if d := treecmp.Diff(ours, kernel, treecmp.DiffOptions{Nlink: true, Sparse: true}); len(d) > 0 {
		t.Fatalf("the in-memory recovery differs from the kernel's:\n%s", strings.Join(d[:min(len(d), 40)], "\n"))
	}
}

// TestInMemoryEqualsReplay: when the log leaves nothing to the kernel, the
// device InMemory returns reads, byte for byte, as the image Replay writes
// (clean log included).
func TestInMemoryEqualsReplay(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m", "-m", "rmapbt=1")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	oracle.Run(t, "sync", "-f", mnt)
	workload(t, mnt, "b")
	crash(t, mnt)
	replayed := filepath.Join(t.TempDir(), "replayed.img")
	copyFile(t, img, replayed)
	if _, err := Run(replayed); err != nil {
		t.Fatal(err)
	}
	base, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	dev, res, err := InMemory(base.Dev)
	if err != nil {
		t.Fatal(err)
	}
	if res.Transactions == 0 || res.UnlinkedInodes != 0 || len(res.Unfinished) != 0 {
		t.Fatalf("want a replay leaving nothing to the kernel: %+v", *res)
	}
	want, err := os.Open(replayed)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	// Odd-sized, unaligned reads: every overlap case of the overlay.
	const step = 1<<20 + 4608 + 7
	a, b := make([]byte, step), make([]byte, step)
	for off := int64(0); off < dev.Size(); off += step {
		n := int(min(step, dev.Size()-off))
		if _, err := dev.ReadAt(a[:n], off); err != nil {
			t.Fatal(err)
		}
		if _, err := want.ReadAt(b[:n], off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			i := 0
			for a[i] == b[i] {
				i++
			}
			t.Fatalf("byte %d (daddr %d) differs from the replayed image", off+int64(i), (off+int64(i))/512)
		}
	}
	rfs, err := xfs.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := xlog.Find(rfs); err != nil || !st.Clean {
		t.Fatalf("the recovered device's log: %v %v", st, err)
	}
}
