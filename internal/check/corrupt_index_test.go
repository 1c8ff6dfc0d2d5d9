package check_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
)

// indexCorruption damages the hash index of one corpus directory or
// attribute fork with `xfs_db -x` (write -d: CRC recomputed, so only the
// index's consistency is wrong). The edit is computed from the image: get
// prints a field at the position `at` selects (after "inode INO").
type indexCorruption struct {
	name string
	form oracle.CorpusForm
	at   []string // $LEAF and $FREE are the leaf and free offsets in blocks
	edit func(get func(field string) uint64) []string
	want string // substring of a finding about the inode
}

func w(field string, v uint64) string { return fmt.Sprintf("write -d %s %d", field, v) }

var indexCorruptions = []indexCorruption{
	// Single-block directory: a leaf entry copied over its neighbour keeps
	// hash order, hashes and counts, but one name loses its leaf entry.
	{name: "dir-block-dup-leaf", form: oracle.FormDirBlock, at: []string{"dblock 0"},
		edit: func(get func(string) uint64) []string {
			i := get("btail.count") / 2
			return []string{
				w(fmt.Sprintf("bleaf[%d].hashval", i+1), get(fmt.Sprintf("bleaf[%d].hashval", i))),
				w(fmt.Sprintf("bleaf[%d].address", i+1), get(fmt.Sprintf("bleaf[%d].address", i))),
			}
		}, want: "two leaf entries point"},
	// Leaf form.
	{name: "dir-leaf-address", form: oracle.FormDirLeaf, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			i := get("lhdr.count") / 2
			return []string{w(fmt.Sprintf("lents[%d].address", i), get(fmt.Sprintf("lents[%d].address", i-1)))}
		}, want: "already indexes"},
	{name: "dir-leaf-bests", form: oracle.FormDirLeaf, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			i := get("ltail.bestcount") - 1
			f := fmt.Sprintf("lbests[%d]", i)
			return []string{w(f, get(f)+8)}
		}, want: "largest free region"},
	{name: "dir-leaf-stale", form: oracle.FormDirLeaf, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			return []string{w("lhdr.stale", get("lhdr.stale")+1)}
		}, want: "stale"},
	// Node form: da-node key, free index, leafn sibling links.
	{name: "dir-node-key", form: oracle.FormDirNode, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			return []string{w("nbtree[0].hashval", get("nbtree[0].hashval")-1)}
		}, want: "ends with hash"},
	{name: "dir-node-free-bests", form: oracle.FormDirNode, at: []string{"dblock $FREE"},
		edit: func(get func(string) uint64) []string {
			f := fmt.Sprintf("fbests[%d]", get("fhdr.nvalid")-1)
			return []string{w(f, get(f)+8)}
		}, want: "largest free region"},
	{name: "dir-node-free-nvalid", form: oracle.FormDirNode, at: []string{"dblock $FREE"},
		edit: func(get func(string) uint64) []string {
			return []string{w("fhdr.nvalid", get("fhdr.nvalid")-1), w("fhdr.nused", get("fhdr.nused")-1)}
		}, want: "no entry in any free index block"},
	{name: "dir-node-leafn-back", form: oracle.FormDirNode, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			// The second leaf's back link must name the first.
			return []string{fmt.Sprintf("dblock %d", get("nbtree[1].before")), w("lhdr.info.hdr.back", 0)}
		}, want: "back link 0"},
	{name: "dir-btree-before", form: oracle.FormDirBtree, at: []string{"dblock $LEAF"},
		edit: func(get func(string) uint64) []string {
			return []string{w("nbtree[0].before", get("nbtree[1].before"))}
		}, want: "reached twice"},
	// Attribute leaf.
	{name: "attr-leaf-firstused", form: oracle.FormAttrLeaf, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			return []string{w("hdr.firstused", get("hdr.firstused")-4)}
		}, want: "firstused"},
	{name: "attr-leaf-incomplete", form: oracle.FormAttrLeaf, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			return []string{w(fmt.Sprintf("entries[%d].incomplete", get("hdr.count")-1), 1)}
		}, want: "incomplete"},
	// Attribute node.
	{name: "attr-node-key", form: oracle.FormAttrNode, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			return []string{w("btree[0].hashval", get("btree[0].hashval")-1)}
		}, want: "ends with hash"},
	{name: "attr-node-before", form: oracle.FormAttrNode, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			return []string{w("btree[2].before", get("btree[0].before"))}
		}, want: "reached twice"},
	// Remote value: its first block moved past the mapped blocks.
	{name: "attr-remote-unmapped", form: oracle.FormAttrRemote, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			i := get("remote entry")
			return []string{w(fmt.Sprintf("nvlist[%d].valueblk", i), get("attr fork end"))}
		}, want: "not mapped"},
}

// stricterThanRepair are index damages xfs_repair -n (6.1) lets pass but
// that break lookups: check must report them all the same.
var stricterThanRepair = []indexCorruption{
	// getxattr would find one of the two and never the other.
	{name: "attr-duplicate-name", form: oracle.FormAttrRemote, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			return []string{w(fmt.Sprintf("entries[%d].root", get("trusted twin")), 0)}
		}, want: "appears twice"},
	// Two values on the same remote blocks: rewriting one corrupts the other.
	{name: "attr-remote-shared", form: oracle.FormAttrRemote, at: []string{"ablock 0"},
		edit: func(get func(string) uint64) []string {
			i, j := get("trusted twin")-1, get("trusted twin")
			return []string{
				w(fmt.Sprintf("nvlist[%d].valueblk", i), get(fmt.Sprintf("nvlist[%d].valueblk", j))),
				w(fmt.Sprintf("nvlist[%d].valuelen", i), get(fmt.Sprintf("nvlist[%d].valuelen", j))),
			}
		}, want: "overlap"},
}

// attrEntry matches xfs_db's attr leaf entry lines:
// i:[hashval,nameidx,incomplete,root,secure,local].
var attrEntry = regexp.MustCompile(`(?m)^(\d+):\[(0x[0-9a-f]+),\d+,\d+,(\d),\d,(\d)\]`)

var attrExtent = regexp.MustCompile(`(?m)^attr offset (\d+) startblock \d+ \(\d+/\d+\) count (\d+)`)

func TestIndexCorruptionsFoundLikeRepair(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	geoms := []struct {
		name  string
		opts  oracle.CorpusOptions
		forms string // prefix of the cases to run
	}{
		{"4k", oracle.CorpusOptions{Mkfs: []string{"-m", "rmapbt=1"}}, ""},
		// Directory blocks of four filesystem blocks.
		{"4k-dir16k", oracle.CorpusOptions{InodeSize: 1024, DirBlockSize: 16384}, "dir-"},
	}
	for _, g := range geoms {
		t.Run(g.name, func(t *testing.T) {
			base, m := oracle.CorpusWithManifest(t, g.opts)
			if r, err := check.Run(base, check.Options{}); err != nil || !r.Clean() {
				t.Fatalf("clean corpus: err %v, findings:\n%s", err, findings(r))
			}
			for _, tc := range indexCorruptions {
				if strings.HasPrefix(tc.name, g.forms) {
					t.Run(tc.name, func(t *testing.T) { runIndexCorruption(t, base, m, tc, true) })
				}
			}
			if g.forms == "" {
				for _, tc := range stricterThanRepair {
					t.Run(tc.name, func(t *testing.T) { runIndexCorruption(t, base, m, tc, false) })
				}
			}
		})
	}
}

func runIndexCorruption(t *testing.T, base string, m *oracle.CorpusManifest, tc indexCorruption, repairFinds bool) {
	paths := m.Paths(tc.form)
	if len(paths) == 0 {
		t.Fatalf("corpus has no %s", tc.form)
	}
	ino := m.Item(paths[0]).Ino
	leaf := (uint64(32) << 30) / uint64(m.BlockSize)
	at := []string{fmt.Sprintf("inode %d", ino)}
	for _, c := range tc.at {
		c = strings.ReplaceAll(c, "$LEAF", fmt.Sprint(leaf))
		at = append(at, strings.ReplaceAll(c, "$FREE", fmt.Sprint(2*leaf)))
	}
	img := filepath.Join(t.TempDir(), "c.img")
	oracle.Run(t, "cp", "--sparse=always", base, img)
	get := func(field string) uint64 {
		t.Helper()
		switch field {
		case "remote entry", "trusted twin":
			// The first remote entry, or the trusted entry sharing its
			// name hash with the entry before it (user.remote and
			// trusted.remote in the corpus).
			out := oracle.DB(t, img, []string{"-r"}, append(at, "p entries")...)
			var prev string
			for _, mm := range attrEntry.FindAllStringSubmatch(out, -1) {
				i, _ := strconv.ParseUint(mm[1], 10, 64)
				if field == "remote entry" && mm[4] == "0" || field == "trusted twin" && mm[3] == "1" && mm[2] == prev {
					return i
				}
				prev = mm[2]
			}
			t.Fatalf("no %s among the entries:\n%s", field, out)
		case "attr fork end":
			out := oracle.DB(t, img, []string{"-r"}, at[0], "bmap -a")
			var end uint64
			for _, mm := range attrExtent.FindAllStringSubmatch(out, -1) {
				off, _ := strconv.ParseUint(mm[1], 10, 64)
				n, _ := strconv.ParseUint(mm[2], 10, 64)
				end = max(end, off+n)
			}
			return end
		}
		out := oracle.DB(t, img, []string{"-r"}, append(at, "p "+field)...)
		s, err := oracle.Field(out, field)
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s = %q: %v", field, s, err)
		}
		return v
	}
	cmds := append(append([]string(nil), at...), tc.edit(get)...)
	oracle.DB(t, img, []string{"-x"}, cmds...)
	out, code := oracle.Repair(t, img)
	if repairFinds && code != 1 {
		t.Fatalf("xfs_repair -n exited %d (want 1) after %q:\n%s", code, cmds, out)
	}
	if !repairFinds {
		t.Logf("xfs_repair -n exited %d after %q", code, cmds)
	}
	r, err := check.Run(img, check.Options{})
	if err != nil && r == nil {
		t.Fatalf("check: %v", err)
	}
	var about []string
	for _, f := range r.Findings() {
		if f.Inode == ino {
			about = append(about, f.String())
		}
	}
	text := strings.Join(about, "\n")
	if !strings.Contains(strings.ToLower(text), strings.ToLower(tc.want)) {
		t.Fatalf("no finding about inode %d mentions %q after %q; findings:\n%s\nxfs_repair said:\n%s", ino, tc.want, cmds, findings(r), out)
	}
	t.Logf("%s", text)
}
