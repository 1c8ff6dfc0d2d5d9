package ondisk_test

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// recDBRecs parses the records xfs_db prints for a B-tree block:
// "recs[1-n] = [a,b,c]" followed by "i:[v,v,v]" lines. It returns one map
// of field name to value text per record.
func recDBRecs(t *testing.T, out string) []map[string]string {
	t.Helper()
	var names []string
	var recs []map[string]string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "recs[") {
			_, v, _ := strings.Cut(line, "=")
			names = strings.Split(strings.Trim(strings.TrimSpace(v), "[]"), ",")
			continue
		}
		if names == nil {
			continue
		}
		_, v, ok := strings.Cut(line, ":[")
		if !ok {
			continue
		}
		vals := strings.Split(strings.TrimSuffix(v, "]"), ",")
		if len(vals) != len(names) {
			t.Fatalf("record %q has %d values for fields %v", line, len(vals), names)
		}
		m := map[string]string{}
		for i, n := range names {
			m[n] = vals[i]
		}
		recs = append(recs, m)
	}
	return recs
}

func recNum(t *testing.T, m map[string]string, name string) uint64 {
	t.Helper()
	s, ok := m[name]
	if !ok {
		t.Fatalf("xfs_db record has no field %q: %v", name, m)
	}
	if strings.HasPrefix(s, "-") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(n)
	}
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, s, err)
	}
	return n
}

func recB2U(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// recImage makes an image whose AG 0 B-trees hold every kind of record the
// kernel writes without crashing: free extents, full and partly free inode
// chunks, rmaps of every special owner, data, attr-fork and unwritten
// extents, and shared (reflinked) extents.
func recImage(t *testing.T, opts ...string) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "600m", append([]string{"-d", "agcount=4"}, opts...)...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	dir := filepath.Join(mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 40; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte(i)}, 5000*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 3; i <= 40; i += 4 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("f%d", i)))
	}
	if _, code := oracle.RunStatus("cp", "--reflink=always", filepath.Join(dir, "f40"), filepath.Join(dir, "clone")); code != 0 {
		t.Log("reflink copy failed (reflink off?)")
	}
	f, err := os.Create(filepath.Join(dir, "prealloc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := syscall.Setxattr(filepath.Join(dir, "f1"), "user.big", bytes.Repeat([]byte("x"), 3000), 0); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	return img
}

// TestBtreeRecordsAgainstXfsDB decodes every record in the AG 0 root leaves
// of each B-tree and compares it with xfs_db, re-encodes it byte for byte,
// verifies it and checks the ordering helpers on neighbours.
func TestBtreeRecordsAgainstXfsDB(t *testing.T) {
	for _, opts := range [][]string{{"-m", "rmapbt=1,reflink=1"}, {"-m", "reflink=0", "-i", "sparse=0"}} {
		t.Run(strings.Join(opts, " "), func(t *testing.T) {
			img := recImage(t, opts...)
			sb, err := ondisk.DecodeSuperblock(agReadAt(t, img, 0, 512))
			if err != nil {
				t.Fatal(err)
			}
			sect := int64(sb.SectSize)
			agf, _ := ondisk.DecodeAGF(agReadAt(t, img, sect, int(sect)))
			agi, _ := ondisk.DecodeAGI(agReadAt(t, img, 2*sect, int(sect)))
			type tree struct {
				geom       ondisk.BtreeGeometry
				root       uint32
				hdr, field string
			}
			trees := []tree{
				{ondisk.BnobtGeom, agf.BnoRoot, "agf 0", "bnoroot"},
				{ondisk.CntbtGeom, agf.CntRoot, "agf 0", "cntroot"},
				{ondisk.InobtGeom, agi.Root, "agi 0", "root"},
			}
			if sb.HasFinobt() {
				trees = append(trees, tree{ondisk.FinobtGeom, agi.FreeRoot, "agi 0", "free_root"})
			}
			if sb.HasRmapbt() {
				trees = append(trees, tree{ondisk.RmapbtGeom, agf.RmapRoot, "agf 0", "rmaproot"})
			}
			if sb.HasReflink() {
				trees = append(trees, tree{ondisk.RefcbtGeom, agf.RefcountRoot, "agf 0", "refcntroot"})
			}
			seen := map[string]bool{}
			for _, tr := range trees {
				name := ondisk.BtreeName(tr.geom.Magic)
				blk := agReadAt(t, img, int64(tr.root)*int64(sb.BlockSize), int(sb.BlockSize))
				h, err := ondisk.VerifyBtreeBlock(blk, tr.geom.Magic, sb.MetaUUIDOrUUID(), uint64(tr.root)<<(sb.BlockLog-9), 0, 0, "AG 0")
				if err != nil {
					t.Fatalf("%s root: %v", name, err)
				}
				want := recDBRecs(t, oracle.DB(t, img, []string{"-r"}, tr.hdr, "addr "+tr.field, "p"))
				if len(want) != int(h.NumRecs) || len(want) == 0 {
					t.Fatalf("%s: %d records decoded, xfs_db printed %d", name, h.NumRecs, len(want))
				}
				for i := 0; i < int(h.NumRecs); i++ {
					raw := tr.geom.Rec(blk, ondisk.ShortHdrSize, i)
					out := make([]byte, len(raw))
					w := want[i]
					where := fmt.Sprintf("%s rec %d", name, i+1)
					switch tr.geom.Magic {
					case ondisk.BnobtMagic, ondisk.CntbtMagic:
						r, err := ondisk.DecodeAllocRec(raw)
						if err != nil {
							t.Fatal(err)
						}
						recCheckFields(t, where, w, map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount)})
						r.Encode(out)
					case ondisk.InobtMagic, ondisk.FinobtMagic:
						r, err := ondisk.DecodeInobtRec(raw, sb.HasSpinodes())
						if err != nil {
							t.Fatal(err)
						}
						f := map[string]uint64{"startino": uint64(r.StartIno), "freecount": uint64(r.FreeCount), "free": r.Free}
						if sb.HasSpinodes() {
							f["holemask"] = uint64(r.HoleMask)
							f["count"] = uint64(r.Count)
						}
						recCheckFields(t, where, w, f)
						if err := r.Verify(sb, 0, where); err != nil {
							t.Error(err)
						}
						if n := bits.OnesCount64(r.AllocatedInodes()); n != int(r.Count)-int(r.FreeCount) {
							t.Errorf("%s: %d allocated inodes, count %d freecount %d", where, n, r.Count, r.FreeCount)
						}
						for j := 0; j < 64; j++ {
							if r.IsAllocated(j) == (r.Free&(1<<j) != 0) {
								t.Errorf("%s: inode %d allocation disagrees with the free mask", where, j)
							}
						}
						if r.FreeCount > 0 && r.FreeCount < 64 {
							seen["partial chunk"] = true
						}
						r.Encode(out)
					case ondisk.RmapbtMagic:
						r, err := ondisk.DecodeRmapRec(raw)
						if err != nil {
							t.Fatal(err)
						}
						recCheckFields(t, where, w, map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount),
							"owner": r.Owner, "offset": r.Offset, "extentflag": recB2U(r.Unwritten), "attrfork": recB2U(r.AttrFork), "bmbtblock": recB2U(r.BmbtBlock)})
						if err := r.Verify(agf.Length, where); err != nil {
							t.Error(err)
						}
						if n := ondisk.RmapOwnerName(r.Owner); n != "" {
							seen["owner "+n] = true
						}
						seen["attr"] = seen["attr"] || r.AttrFork
						seen["unwritten"] = seen["unwritten"] || r.Unwritten
						r.Encode(out)
						lo := make([]byte, ondisk.RmapKeySize)
						if err := ondisk.BtreeRecKey(tr.geom.Magic, raw, lo, false); err != nil {
							t.Fatal(err)
						}
						k, _ := ondisk.DecodeRmapKey(lo)
						if k.StartBlock != r.StartBlock || k.Owner != r.Owner || k.Offset != r.Offset {
							t.Errorf("%s: low key %+v", where, k)
						}
					case ondisk.RefcbtMagic:
						r, err := ondisk.DecodeRefcountRec(raw)
						if err != nil {
							t.Fatal(err)
						}
						recCheckFields(t, where, w, map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount),
							"refcount": uint64(r.RefCount), "cowflag": recB2U(r.COW)})
						if err := r.Verify(agf.Length, where); err != nil {
							t.Error(err)
						}
						seen["shared"] = true
						r.Encode(out)
					}
					if !bytes.Equal(out, raw) {
						t.Errorf("%s re-encodes as %x, disk has %x", where, out, raw)
					}
					if i > 0 {
						prev := tr.geom.Rec(blk, ondisk.ShortHdrSize, i-1)
						if !ondisk.BtreeRecsInOrder(tr.geom.Magic, prev, raw) {
							t.Errorf("%s: out of order after its predecessor", where)
						}
						if ondisk.BtreeRecsInOrder(tr.geom.Magic, raw, prev) {
							t.Errorf("%s: order helper accepts it before its predecessor", where)
						}
					}
				}
			}
			wantSeen := []string{"partial chunk"}
			if sb.HasRmapbt() {
				wantSeen = append(wantSeen, "owner FS", "owner AG", "owner INOBT", "owner INODES", "attr", "unwritten")
			}
			if sb.HasReflink() {
				wantSeen = append(wantSeen, "shared", "owner REFC")
			}
			for _, s := range wantSeen {
				if !seen[s] {
					t.Errorf("image lacks %s records; the test covers less than it claims (seen %v)", s, seen)
				}
			}
		})
	}
}

func recCheckFields(t *testing.T, where string, db map[string]string, got map[string]uint64) {
	t.Helper()
	for name, v := range got {
		if w := recNum(t, db, name); w != v {
			t.Errorf("%s %s: decoded %d, xfs_db %d", where, name, v, w)
		}
	}
}

func TestRmapOwnersAndKeys(t *testing.T) {
	for want, got := range map[int64]uint64{-1: ondisk.RmapOwnNull, -2: ondisk.RmapOwnUnknown, -3: ondisk.RmapOwnFS,
		-4: ondisk.RmapOwnLog, -5: ondisk.RmapOwnAG, -6: ondisk.RmapOwnInobt, -7: ondisk.RmapOwnInodes,
		-8: ondisk.RmapOwnRefc, -9: ondisk.RmapOwnCOW, -10: ondisk.RmapOwnMin} {
		if uint64(want) != got {
			t.Errorf("owner %d encoded as 0x%x", want, got)
		}
	}
	r := ondisk.RmapRec{StartBlock: 100, BlockCount: 10, Owner: 1234, Offset: 50, AttrFork: true, Unwritten: true}
	raw := make([]byte, ondisk.RmapRecSize)
	r.Encode(raw)
	if got := raw[16]; got != 0xa0 { // attr fork bit 63 + unwritten bit 61
		t.Errorf("flag byte 0x%02x, want 0xa0", got)
	}
	back, _ := ondisk.DecodeRmapRec(raw)
	if back != r {
		t.Errorf("round trip %+v -> %+v", r, back)
	}
	hi := r.HighKey()
	if hi.StartBlock != 109 || hi.Offset != 59 || !hi.AttrFork {
		t.Errorf("high key %+v", hi)
	}
	bm := ondisk.RmapRec{StartBlock: 7, BlockCount: 3, Owner: 99, BmbtBlock: true}
	if k := bm.HighKey(); k.StartBlock != 9 || k.Offset != 0 {
		t.Errorf("bmbt block high key %+v", k)
	}
	if err := (ondisk.RmapRec{StartBlock: 1, BlockCount: 1, Owner: ondisk.RmapOwnAG, Offset: 5}).Verify(100, "t"); err == nil {
		t.Error("special owner with an offset accepted")
	}
	// Keys ignore the unwritten flag but order by fork.
	a := ondisk.RmapKey{StartBlock: 5, Owner: 9, Offset: 1}
	b := a
	b.AttrFork = true
	if a.Compare(b) >= 0 || b.Compare(a) <= 0 || a.Compare(a) != 0 {
		t.Error("attr fork key does not sort after the data fork key")
	}
	c := ondisk.RefcountRec{StartBlock: 12345, COW: true, BlockCount: 3, RefCount: 1}
	cb := make([]byte, ondisk.RefcountRecSize)
	c.Encode(cb)
	if cb[0]&0x80 == 0 {
		t.Error("COW flag not in bit 31")
	}
	if back, _ := ondisk.DecodeRefcountRec(cb); back != c {
		t.Errorf("refcount round trip %+v", back)
	}
	shared := make([]byte, ondisk.RefcountRecSize)
	ondisk.RefcountRec{StartBlock: 20000, BlockCount: 1, RefCount: 2}.Encode(shared)
	if !ondisk.BtreeRecsInOrder(ondisk.RefcbtMagic, shared, cb) {
		t.Error("COW records must sort after shared ones")
	}
}

func TestInobtSparseHelpers(t *testing.T) {
	// Inodes 0..15 and 48..63 present, the middle 32 in holes, 3 in use.
	r := ondisk.InobtRec{StartIno: 128, HoleMask: 0x0ff0, Count: 32, Sparse: true}
	r.Free = ^uint64(0) &^ (1<<0 | 1<<5 | 1<<63)
	r.FreeCount = 29
	if err := r.Verify(&ondisk.Superblock{}, 0, "t"); err == nil || !strings.Contains(err.Error(), "startino") {
		// An empty superblock gives an empty inode range; only startino may fail.
		t.Logf("verify on empty sb: %v", err)
	}
	if r.HoleInodes() != 0x0000ffffffff0000 {
		t.Errorf("hole inodes 0x%016x", r.HoleInodes())
	}
	if r.AllocatedInodes() != 1<<0|1<<5|1<<63 {
		t.Errorf("allocated 0x%016x", r.AllocatedInodes())
	}
	if !r.IsHole(16) || !r.IsHole(47) || r.IsHole(15) || r.IsHole(48) || r.IsHole(64) || r.IsHole(-1) {
		t.Error("IsHole wrong at a boundary")
	}
	if runs := r.PresentRuns(); len(runs) != 2 || runs[0] != [2]int{0, 16} || runs[1] != [2]int{48, 64} {
		t.Errorf("present runs %v", runs)
	}
	full := ondisk.InobtRec{Count: 64}
	if runs := full.PresentRuns(); len(runs) != 1 || runs[0] != [2]int{0, 64} {
		t.Errorf("full chunk runs %v", runs)
	}
	b := make([]byte, 16)
	r.Encode(b)
	if back, _ := ondisk.DecodeInobtRec(b, true); back != r {
		t.Errorf("sparse round trip %+v", back)
	}
}
