package ondisk_test

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// agGeometries are the mkfs variants the AG header tests run on.
var agGeometries = [][]string{
	nil, // 4k blocks, finobt, reflink, sparse inodes, inobtcount
	{"-b", "size=1024", "-m", "rmapbt=1", "-d", "agcount=6"},
	{"-b", "size=65536", "-m", "reflink=0,finobt=0", "-i", "sparse=0"},
	{"-m", "inobtcount=0,reflink=0", "-s", "size=4096", "-d", "agsize=128m"},
	{"-m", "rmapbt=1,reflink=1", "-i", "size=1024", "-d", "agcount=3"},
}

// agImage makes an image with opts, mounts it, writes files into it so the
// kernel updates the AG headers, and unmounts it.
func agImage(t *testing.T, opts ...string) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "600m", opts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	for d := 0; d < 8; d++ {
		dir := filepath.Join(mnt, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 150; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%d", i))
			if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 100*i), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 150; i += 3 {
			if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	oracle.Unmount(t, mnt)
	return img
}

func agReadAt(t *testing.T, img string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// agDBSections splits xfs_db print output into one section per structure,
// each starting at its "magicnum" line.
func agDBSections(out string) []string {
	var secs []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "magicnum = ") {
			secs = append(secs, "")
		}
		if len(secs) > 0 {
			secs[len(secs)-1] += line + "\n"
		}
	}
	return secs
}

// agDBNum parses an xfs_db numeric field; "null" is all ones, empty is 0.
func agDBNum(t *testing.T, sec, name string) uint64 {
	t.Helper()
	v, err := oracle.Field(sec, name)
	if err != nil {
		// Field cuts on " = ", which an empty value lacks.
		for _, line := range strings.Split(sec, "\n") {
			if strings.TrimSpace(line) == name+" =" {
				return 0
			}
		}
		t.Fatalf("%v in:\n%s", err, sec)
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	if f[0] == "null" {
		return 0xffffffff
	}
	n, err := strconv.ParseUint(f[0], 0, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, v, err)
	}
	return n
}

// agDBArray parses "name[a-b] = i:v i:v ..." into a map (null = all ones).
func agDBArray(t *testing.T, sec, prefix string) map[int]uint64 {
	t.Helper()
	m := map[int]uint64{}
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, prefix+"[") {
			continue
		}
		_, v, _ := strings.Cut(line, "=")
		for _, tok := range strings.Fields(v) {
			is, vs, ok := strings.Cut(tok, ":")
			if !ok {
				t.Fatalf("bad array token %q", tok)
			}
			i, err := strconv.Atoi(is)
			if err != nil {
				t.Fatal(err)
			}
			if vs == "null" {
				m[i] = 0xffffffff
				continue
			}
			n, err := strconv.ParseUint(vs, 0, 64)
			if err != nil {
				t.Fatal(err)
			}
			m[i] = n
		}
		return m
	}
	t.Fatalf("no %s array in:\n%s", prefix, sec)
	return nil
}

func TestAGHeadersAgainstXfsDB(t *testing.T) {
	for _, opts := range agGeometries {
		t.Run(strings.Join(opts, " "), func(t *testing.T) {
			t.Parallel()
			img := agImage(t, opts...)
			sb0 := agReadAt(t, img, 0, 512)
			sb, err := ondisk.DecodeSuperblock(sb0)
			if err != nil {
				t.Fatal(err)
			}
			var cmds []string
			for ag := uint32(0); ag < sb.AGCount; ag++ {
				cmds = append(cmds, fmt.Sprintf("agf %d", ag), "p", fmt.Sprintf("agi %d", ag), "p", fmt.Sprintf("agfl %d", ag), "p")
			}
			secs := agDBSections(oracle.DB(t, img, []string{"-r"}, cmds...))
			if len(secs) != 3*int(sb.AGCount) {
				t.Fatalf("xfs_db printed %d structures, want %d", len(secs), 3*sb.AGCount)
			}
			sect := int64(sb.SectSize)
			var sawLSN, sawFree, sawAlloc bool
			for ag := uint32(0); ag < sb.AGCount; ag++ {
				base := int64(ag) * int64(sb.AGBlocks) * int64(sb.BlockSize)
				agfBuf := agReadAt(t, img, base+sect, int(sect))
				agiBuf := agReadAt(t, img, base+2*sect, int(sect))
				aflBuf := agReadAt(t, img, base+3*sect, int(sect))
				agf, err := ondisk.DecodeAGF(agfBuf)
				if err != nil {
					t.Fatal(err)
				}
				agi, err := ondisk.DecodeAGI(agiBuf)
				if err != nil {
					t.Fatal(err)
				}
				agfl, err := ondisk.DecodeAGFL(aflBuf)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range []error{agf.Verify(agfBuf, ag, sb), agi.Verify(agiBuf, ag, sb), agfl.Verify(aflBuf, ag, sb)} {
					if v != nil {
						t.Errorf("AG %d: %v", ag, v)
					}
				}
				compareAGF(t, ag, agf, secs[3*ag])
				compareAGI(t, ag, agi, secs[3*ag+1])
				compareAGFL(t, ag, agfl, secs[3*ag+2])
				sawLSN = sawLSN || agf.LSN != 0 || agi.LSN != 0
				sawFree = sawFree || agi.FreeCount > 0
				sawAlloc = sawAlloc || agi.Count > 64

				// Byte-identical round trips.
				for _, rt := range []struct {
					name string
					orig []byte
					enc  func([]byte)
				}{{"AGF", agfBuf, agf.Encode}, {"AGI", agiBuf, agi.Encode}, {"AGFL", aflBuf, agfl.Encode}} {
					out := make([]byte, len(rt.orig))
					rt.enc(out)
					if !bytes.Equal(out, rt.orig) {
						t.Errorf("AG %d: %s re-encodes differently", ag, rt.name)
					}
				}
				// The free list reads back in ring order, as xfs_db shows it.
				fl, err := agfl.FreeList(agf, ag, sb)
				if err != nil {
					t.Errorf("AG %d: %v", ag, err)
				}
				if len(fl) != int(agf.FLCount) {
					t.Errorf("AG %d: free list has %d blocks, flcount %d", ag, len(fl), agf.FLCount)
				}
			}
			if !sawLSN || !sawFree || !sawAlloc {
				t.Errorf("kernel activity not visible in the headers (lsn %v, free inodes %v, allocated chunks %v)", sawLSN, sawFree, sawAlloc)
			}
		})
	}
}

// agDBCRC is how xfs_db prints a CRC: it reads the little-endian field as a
// big-endian number.
func agDBCRC(c uint32) uint64 { return uint64(bits.ReverseBytes32(c)) }

func compareAGF(t *testing.T, ag uint32, a *ondisk.AGF, sec string) {
	t.Helper()
	want := map[string]uint64{
		"magicnum": uint64(a.Magic), "versionnum": uint64(a.Version), "seqno": uint64(a.SeqNo),
		"length": uint64(a.Length), "bnoroot": uint64(a.BnoRoot), "cntroot": uint64(a.CntRoot),
		"rmaproot": uint64(a.RmapRoot), "refcntroot": uint64(a.RefcountRoot), "bnolevel": uint64(a.BnoLevel),
		"cntlevel": uint64(a.CntLevel), "rmaplevel": uint64(a.RmapLevel), "refcntlevel": uint64(a.RefcountLevel),
		"rmapblocks": uint64(a.RmapBlocks), "refcntblocks": uint64(a.RefcountBlocks), "flfirst": uint64(a.FLFirst),
		"fllast": uint64(a.FLLast), "flcount": uint64(a.FLCount), "freeblks": uint64(a.FreeBlks),
		"longest": uint64(a.Longest), "btreeblks": uint64(a.BtreeBlks), "lsn": a.LSN, "crc": agDBCRC(a.CRC),
	}
	for name, got := range want {
		if db := agDBNum(t, sec, name); db != got {
			t.Errorf("AG %d AGF %s: decoded %d, xfs_db %d", ag, name, got, db)
		}
	}
	if u, _ := oracle.Field(sec, "uuid"); u != a.UUID.String() {
		t.Errorf("AG %d AGF uuid %s, xfs_db %s", ag, a.UUID, u)
	}
	if !strings.Contains(sec, "(correct)") {
		t.Errorf("AG %d AGF: xfs_db does not call the CRC correct", ag)
	}
}

func compareAGI(t *testing.T, ag uint32, a *ondisk.AGI, sec string) {
	t.Helper()
	want := map[string]uint64{
		"magicnum": uint64(a.Magic), "versionnum": uint64(a.Version), "seqno": uint64(a.SeqNo),
		"length": uint64(a.Length), "count": uint64(a.Count), "root": uint64(a.Root), "level": uint64(a.Level),
		"freecount": uint64(a.FreeCount), "newino": uint64(a.NewIno), "dirino": uint64(a.DirIno),
		"crc": agDBCRC(a.CRC), "lsn": a.LSN, "free_root": uint64(a.FreeRoot), "free_level": uint64(a.FreeLevel),
		"ino_blocks": uint64(a.IBlocks), "fino_blocks": uint64(a.FBlocks),
	}
	for name, got := range want {
		if db := agDBNum(t, sec, name); db != got {
			t.Errorf("AG %d AGI %s: decoded %d, xfs_db %d", ag, name, got, db)
		}
	}
	if u, _ := oracle.Field(sec, "uuid"); u != a.UUID.String() {
		t.Errorf("AG %d AGI uuid %s, xfs_db %s", ag, a.UUID, u)
	}
	// xfs_db lists only the non-null buckets.
	ul := agDBArray(t, sec, "unlinked")
	for i, v := range a.Unlinked {
		dbv, ok := ul[i]
		if !ok {
			dbv = 0xffffffff
		}
		if uint64(v) != dbv {
			t.Errorf("AG %d AGI unlinked[%d]: decoded %d, xfs_db %d", ag, i, v, dbv)
		}
	}
}

func compareAGFL(t *testing.T, ag uint32, a *ondisk.AGFL, sec string) {
	t.Helper()
	want := map[string]uint64{"magicnum": uint64(a.Magic), "seqno": uint64(a.SeqNo), "lsn": a.LSN, "crc": agDBCRC(a.CRC)}
	for name, got := range want {
		if db := agDBNum(t, sec, name); db != got {
			t.Errorf("AG %d AGFL %s: decoded %d, xfs_db %d", ag, name, got, db)
		}
	}
	if u, _ := oracle.Field(sec, "uuid"); u != a.UUID.String() {
		t.Errorf("AG %d AGFL uuid %s, xfs_db %s", ag, a.UUID, u)
	}
	bno := agDBArray(t, sec, "bno")
	if len(bno) != len(a.Bno) {
		t.Fatalf("AG %d AGFL: %d slots decoded, xfs_db shows %d", ag, len(a.Bno), len(bno))
	}
	for i, v := range a.Bno {
		if uint64(v) != bno[i] {
			t.Errorf("AG %d AGFL bno[%d]: decoded %d, xfs_db %d", ag, i, v, bno[i])
		}
	}
}

// Damage is caught: a flipped bit by the CRC, and fields rewritten by xfs_db
// (which recomputes the CRC) by the range checks, naming the field.
func TestAGHeaderCorruption(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	img := oracle.Mkfs(t, "600m", "-m", "rmapbt=1", "-d", "agcount=4")
	sb, err := ondisk.DecodeSuperblock(agReadAt(t, img, 0, 512))
	if err != nil {
		t.Fatal(err)
	}
	sect := int64(sb.SectSize)
	agBase := func(ag uint32) int64 { return int64(ag) * int64(sb.AGBlocks) * int64(sb.BlockSize) }
	read := func(ag uint32, n int64) []byte { return agReadAt(t, img, agBase(ag)+n*sect, int(sect)) }

	// CRC damage, one bit in each header, including bytes past the struct.
	for n, off := range map[int64]int{1: 52, 2: 400, 3: 200} {
		buf := read(2, n)
		buf[off] ^= 0x10
		var err error
		switch n {
		case 1:
			a, _ := ondisk.DecodeAGF(buf)
			err = a.Verify(buf, 2, sb)
		case 2:
			a, _ := ondisk.DecodeAGI(buf)
			err = a.Verify(buf, 2, sb)
		case 3:
			a, _ := ondisk.DecodeAGFL(buf)
			err = a.Verify(buf, 2, sb)
		}
		if err == nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), "AG 2") {
			t.Errorf("header sector %d: bit flip at %d not caught as checksum error: %v", n, off, err)
		}
	}
	// A header read for the wrong AG.
	buf := read(1, 1)
	a, _ := ondisk.DecodeAGF(buf)
	if err := a.Verify(buf, 3, sb); err == nil || !strings.Contains(err.Error(), "seqno") {
		t.Errorf("AGF of AG 1 accepted as AG 3: %v", err)
	}

	first, _ := ondisk.AGInoRange(sb, 1)
	cases := []struct {
		hdr, write, field string
		sector            int64
	}{
		{"agf 1", "write -d bnolevel 0", "bnolevel", 1},
		{"agf 1", fmt.Sprintf("write -d cntroot %d", sb.AGBlocks), "cntroot", 1},
		{"agf 1", "write -d rmaproot 0", "rmaproot", 1},
		{"agf 1", "write -d flcount 7", "flcount", 1},
		{"agf 1", "write -d longest 99999999", "longest", 1},
		{"agf 1", "write -d length 77", "length", 1},
		{"agi 1", fmt.Sprintf("write -d unlinked[3] %d", sb.AGBlocks<<sb.InoPBLog+5), "unlinked[3]", 2},
		{"agi 1", "write -d level 12", "level", 2},
		{"agi 1", "write -d freecount 100", "freecount", 2},
		{"agi 1", "write -d newino 3", "", 2},  // a hint the kernel ignores: accepted
		{"agfl 1", "write -d bno[7] 0", "", 3}, // a stale slot: the kernel accepts any block inside the AG
		{"agfl 1", fmt.Sprintf("write -d bno[7] %d", sb.AGBlocks+5), "bno[7]", 3},
		{"agfl 1", "write -d seqno 2", "seqno", 3},
		{"agi 1", fmt.Sprintf("write -d unlinked[3] %d", first+7), "", 2}, // valid agino: accepted
	}
	for _, tc := range cases {
		t.Run(tc.write, func(t *testing.T) {
			c := filepath.Join(t.TempDir(), "c.img")
			oracle.Run(t, "cp", "--sparse=always", img, c)
			oracle.DB(t, c, []string{"-x"}, tc.hdr, tc.write)
			buf := agReadAt(t, c, agBase(1)+tc.sector*sect, int(sect))
			// Whatever xfs_db's version does with the CRC, make it right so
			// that the field checks are what is tested.
			ondisk.SetCRC(buf, map[int64]int{1: ondisk.AGFCRCOff, 2: ondisk.AGICRCOff, 3: ondisk.AGFLCRCOff}[tc.sector])
			var err error
			switch tc.sector {
			case 1:
				a, _ := ondisk.DecodeAGF(buf)
				err = a.Verify(buf, 1, sb)
			case 2:
				a, _ := ondisk.DecodeAGI(buf)
				err = a.Verify(buf, 1, sb)
				if tc.field == "" && strings.Contains(tc.write, "unlinked") && a.Unlinked[3] != first+7 {
					t.Errorf("unlinked[3] decoded as %d, wrote %d", a.Unlinked[3], first+7)
				}
			case 3:
				a, _ := ondisk.DecodeAGFL(buf)
				err = a.Verify(buf, 1, sb)
			}
			if tc.field == "" {
				if err != nil {
					t.Errorf("valid change rejected: %v", err)
				}
				return
			}
			var ce *ondisk.CorruptError
			if !agAsCorrupt(err, &ce) || ce.Field != tc.field || ce.Where != "AG 1" {
				t.Errorf("%s: got %v, want corruption of field %s in AG 1", tc.write, err, tc.field)
			}
		})
	}
}

func agAsCorrupt(err error, ce **ondisk.CorruptError) bool {
	c, ok := err.(*ondisk.CorruptError)
	if ok {
		*ce = c
	}
	return ok
}

// Maximum B-tree heights agree with xfs_db's btheight at minimum fill for
// the record counts the kernel assumes.
func TestBtreeMaxLevels(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	for _, opts := range [][]string{nil, {"-b", "size=1024", "-m", "rmapbt=1,reflink=0"}, {"-b", "size=65536", "-m", "rmapbt=1,reflink=0"}} {
		img := oracle.Mkfs(t, "600m", opts...)
		sb, err := ondisk.DecodeSuperblock(agReadAt(t, img, 0, 512))
		if err != nil {
			t.Fatal(err)
		}
		trees := []struct {
			magic   uint32
			name    string
			records uint64
		}{
			{ondisk.BnobtMagic, "bnobt", (uint64(sb.AGBlocks) + 1) / 2},
			{ondisk.CntbtMagic, "cntbt", (uint64(sb.AGBlocks) + 1) / 2},
			{ondisk.InobtMagic, "inobt", (uint64(1) << (sb.InoPBLog + sb.AGBlkLog)) / 64},
			{ondisk.FinobtMagic, "finobt", (uint64(1) << (sb.InoPBLog + sb.AGBlkLog)) / 64},
			{ondisk.RefcbtMagic, "refcountbt", uint64(sb.AGBlocks)},
		}
		if sb.HasRmapbt() && !sb.HasReflink() {
			trees = append(trees, struct {
				magic   uint32
				name    string
				records uint64
			}{ondisk.RmapbtMagic, "rmapbt", uint64(sb.AGBlocks)})
		}
		for _, tr := range trees {
			out := oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("btheight -w min -n %d %s", tr.records, tr.name))
			var want int
			for _, line := range strings.Split(out, "\n") {
				if n, err := fmt.Sscanf(line, "%d levels", &want); err == nil && n == 1 {
					break
				}
			}
			if got := ondisk.BtreeMaxLevels(sb, tr.magic); want == 0 || got != want {
				t.Errorf("%v: %s max levels %d, xfs_db btheight says %d:\n%s", opts, tr.name, got, want, out)
			}
		}
	}
}
