package check_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
)

// corruption is one damage injected with `xfs_db -x`: xfs_repair -n must
// exit 1 on it, and check must report it naming the structure.
type corruption struct {
	name string
	form oracle.CorpusForm // inode to aim at (sets $INO), "" for none
	path string            // or the inode at this corpus path
	cmds []string          // xfs_db commands; $INO is replaced
	want string            // substring of some finding's structure or message
}

var corruptions = []corruption{
	// superblocks
	{name: "sb1-crc", cmds: []string{"sb 1", "write -c dblocks 12345"}, want: "superblock"},
	{name: "sb2-geometry", cmds: []string{"sb 2", "write -d agblocks 1000"}, want: "superblock"},
	{name: "sb0-icount", cmds: []string{"sb 0", "write -d icount 999999"}, want: "icount"},
	{name: "sb0-fdblocks", cmds: []string{"sb 0", "write -d fdblocks 5"}, want: "fdblocks"},
	// AG headers
	{name: "agf-crc", cmds: []string{"agf 1", "write -c freeblks 7"}, want: "AGF"},
	{name: "agf-freeblks", cmds: []string{"agf 0", "write -d freeblks 7"}, want: "freeblks"},
	{name: "agf-longest", cmds: []string{"agf 2", "write -d longest 1"}, want: "longest"},
	{name: "agf-flcount", cmds: []string{"agf 0", "write -d flcount 1"}, want: "leaked"},
	{name: "agi-crc", cmds: []string{"agi 1", "write -c count 5"}, want: "AGI"},
	{name: "agi-freecount", cmds: []string{"agi 0", "write -d freecount 9"}, want: "freecount"},
	{name: "agi-unlinked", cmds: []string{"agi 0", "write -d unlinked[3] 77"}, want: "unlinked"},
	{name: "agfl-crc", cmds: []string{"agfl 0", "write -c bno[0] 1"}, want: "AGFL"},
	// free space and inode B-trees
	{name: "bnobt-rec", cmds: []string{"agf 0", "addr bnoroot", "write -d recs[2].startblock 10"}, want: "bnobt"},
	{name: "cntbt-rec", cmds: []string{"agf 0", "addr cntroot", "write -d recs[1].blockcount 3"}, want: "cntbt"},
	{name: "cntbt-crc", cmds: []string{"agf 0", "addr cntroot", "write -c numrecs 0"}, want: "cntbt"},
	{name: "inobt-freecount", cmds: []string{"agi 0", "addr root", "write -d recs[2].freecount 3"}, want: "inobt"},
	{name: "inobt-freemask", cmds: []string{"agi 0", "addr root", "write -d recs[2].free 7"}, want: "inode"},
	{name: "inobt-crc", cmds: []string{"agi 0", "addr root", "write -c level 3"}, want: "inobt"},
	{name: "finobt-crc", cmds: []string{"agi 0", "addr free_root", "write -c level 1"}, want: "finobt"},
	{name: "rmapbt-owner", cmds: []string{"agf 0", "addr rmaproot", "write -d recs[12].owner 77"}, want: "reverse mapping"},
	{name: "rmapbt-crc", cmds: []string{"agf 0", "addr rmaproot", "write -c numrecs 2"}, want: "rmapbt"},
	// inode cores and forks
	{name: "inode-crc", form: oracle.FormFileExtents, cmds: []string{"inode $INO", "write -c core.mode 0100600"}, want: "inode"},
	{name: "inode-nblocks", form: oracle.FormFileExtents, cmds: []string{"inode $INO", "write -d core.nblocks 99"}, want: "nblocks"},
	{name: "inode-magic", form: oracle.FormFileEmpty, cmds: []string{"inode $INO", "write -d core.magic 0"}, want: "inode"},
	{name: "inode-mode-free", form: oracle.FormFileEmpty, cmds: []string{"inode $INO", "write -d core.mode 0"}, want: "free"},
	{name: "extent-overlap", form: oracle.FormFileExtents, cmds: []string{"inode $INO", "write -d u3.bmx[0].startblock 1"}, want: "claimed by both"},
	{name: "bmbt-block-crc", form: oracle.FormFileBtree, cmds: []string{"inode $INO", "addr u3.bmbt.ptrs[1]", "write -c numrecs 1"}, want: "bmbt"},
	{name: "bmbt-root-level", form: oracle.FormFileBtree, cmds: []string{"inode $INO", "write -d u3.bmbt.level 5"}, want: "bmbt"},
	{name: "symlink-remote-crc", form: oracle.FormSymlinkRemote, cmds: []string{"inode $INO", "dblock 0", "write -c offset 5"}, want: "symlink"},
	{name: "symlink-remote-magic", form: oracle.FormSymlinkRemote, cmds: []string{"inode $INO", "dblock 0", "write -d magic 0"}, want: "symlink"},
	{name: "attr-leaf-crc", form: oracle.FormAttrLeaf, cmds: []string{"inode $INO", "ablock 0", "write -c hdr.usedbytes 1"}, want: "attr"},
	{name: "attr-leaf-magic", form: oracle.FormAttrLeaf, cmds: []string{"inode $INO", "ablock 0", "write -d hdr.info.hdr.magic 0"}, want: "attr"},
	{name: "dir-block-crc", form: oracle.FormDirBlock, cmds: []string{"inode $INO", "dblock 0", "write -c bhdr.hdr.magic 0"}, want: "dir"},
	{name: "dir-short-entry", path: "forms/dirs/short", cmds: []string{"inode $INO", "write -d u3.sfdir3.list[0].inumber.i4 12345"}, want: "dir"},
	{name: "dir-short-parent", path: "forms/dirs/empty", cmds: []string{"inode $INO", "write -d u3.sfdir3.hdr.parent.i4 12345"}, want: "dir"},
	// The leaf and node blocks of a directory: xfs_db's dblock 8388608 is
	// the leaf space's first block (32 GiB / 4 KiB directory blocks).
	{name: "dir-node-lsn", form: oracle.FormDirNode, cmds: []string{"inode $INO", "dblock 8388608", "write -d nhdr.info.lsn 0x7fff000000000001"}, want: "ahead of the log"},
	{name: "dir-leaf-lsn", form: oracle.FormDirLeaf, cmds: []string{"inode $INO", "dblock 8388608", "write -d lhdr.info.lsn 0x7fff000000000001"}, want: "ahead of the log"},
	{name: "nlink", form: oracle.FormFileEmpty, cmds: []string{"inode $INO", "write -d core.nlinkv2 7"}, want: "link"},
}

func TestCorruptionsFoundLikeRepair(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	opts := oracle.CorpusOptions{Mkfs: []string{"-m", "rmapbt=1"}}
	base, m := oracle.CorpusWithManifest(t, opts)
	// The untouched corpus is clean for both.
	oracle.RequireRepairClean(t, base)
	if r, err := check.Run(base, check.Options{}); err != nil || !r.Clean() {
		t.Fatalf("clean corpus: err %v, findings:\n%s", err, findings(r))
	}
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "c.img")
			oracle.Run(t, "cp", "--sparse=always", base, img)
			cmds := tc.cmds
			if tc.form != "" || tc.path != "" {
				path := tc.path
				if path == "" {
					paths := m.Paths(tc.form)
					if len(paths) == 0 {
						t.Fatalf("corpus has no %s", tc.form)
					}
					path = paths[0]
				}
				item := m.Item(path)
				if item == nil {
					t.Fatalf("corpus has no %s", path)
				}
				ino := item.Ino
				cmds = nil
				for _, c := range tc.cmds {
					cmds = append(cmds, strings.ReplaceAll(c, "$INO", fmt.Sprint(ino)))
				}
			}
			oracle.DB(t, img, []string{"-x"}, cmds...)
			out, code := oracle.Repair(t, img)
			if code != 1 {
				t.Fatalf("xfs_repair -n exited %d (want 1) after %q:\n%s", code, cmds, out)
			}
			r, err := check.Run(img, check.Options{})
			if err != nil && r == nil {
				t.Fatalf("check: %v", err)
			}
			if r.Clean() {
				t.Fatalf("check found nothing after %q; xfs_repair said:\n%s", cmds, out)
			}
			if !strings.Contains(strings.ToLower(findings(r)), strings.ToLower(tc.want)) {
				t.Errorf("no finding mentions %q:\n%s", tc.want, findings(r))
			}
		})
	}
}

func findings(r *check.Report) string {
	if r == nil {
		return "(no report)"
	}
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
