package pack_test

import (
	"bytes"
	"errors"
	"testing"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

func TestSpaceAlloc(t *testing.T) {
	sb := fuzzSB(12)
	s := pack.NewSpace(sb)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetFree(0, []pack.AGExtent{{Bno: 10, Len: 5}, {Bno: 100, Len: 1000}}))
	must(s.SetFree(1, []pack.AGExtent{{Bno: 50, Len: 100}}))
	if err := s.SetFree(2, []pack.AGExtent{{Bno: 10, Len: 5}, {Bno: 12, Len: 5}}); err == nil {
		t.Error("overlapping free extents accepted")
	}
	// First fit in the hinted AG, whole request in one extent.
	runs, err := s.Alloc(pack.Request{Len: 20, Near: sb.AGToFSB(0, 0)})
	must(err)
	if len(runs) != 1 || runs[0] != (pack.Run{FSB: sb.AGToFSB(0, 100), Len: 20}) {
		t.Errorf("got %v, want one run at AG 0 block 100", runs)
	}
	runs, err = s.Alloc(pack.Request{Len: 3, Near: sb.AGToFSB(0, 0)})
	must(err)
	if runs[0].FSB != sb.AGToFSB(0, 10) {
		t.Errorf("small request went to %v, want the first extent", runs)
	}
	// Alignment: the start is a multiple of 8.
	runs, err = s.Alloc(pack.Request{Len: 8, Near: sb.AGToFSB(1, 0), Align: 8, Contig: true})
	must(err)
	if _, agbno := sb.FSBToAG(runs[0].FSB); agbno%8 != 0 || agbno < 50 {
		t.Errorf("aligned run at block %d", agbno)
	}
	// Too big for any one extent: pieces, hinted AG first.
	total := s.TotalFree()
	runs, err = s.Alloc(pack.Request{Len: 1000, Near: sb.AGToFSB(1, 0)})
	must(err)
	var n uint64
	for _, r := range runs {
		n += r.Len
	}
	if n != 1000 || s.TotalFree() != total-1000 {
		t.Errorf("pieces total %d, free %d -> %d", n, total, s.TotalFree())
	}
	if _, err := s.Alloc(pack.Request{Len: s.TotalFree() + 1}); !errors.Is(err, pack.ErrNoSpace) {
		t.Errorf("over-allocation: %v", err)
	}
}

func TestXattrFromLinux(t *testing.T) {
	for _, c := range []struct {
		name string
		ns   ondisk.AttrNamespace
		xfs  string
	}{
		{"user.a", ondisk.NSUser, "a"}, {"trusted.b.c", ondisk.NSTrusted, "b.c"}, {"security.selinux", ondisk.NSSecurity, "selinux"},
	} {
		x, err := pack.XattrFromLinux(c.name, []byte("v"))
		if err != nil || x.NS != c.ns || string(x.Name) != c.xfs {
			t.Errorf("%s: %+v %v", c.name, x, err)
		}
	}
	for _, bad := range []string{"user.", "nons", "system.other", "os2.x", "user"} {
		if _, err := pack.XattrFromLinux(bad, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// ACL: Linux format in, XFS format out, undefined ids normalised.
	linux := ondisk.PosixACLXattr([]ondisk.ACLEntry{{Tag: ondisk.ACLUserObj, Perm: 7}, {Tag: ondisk.ACLUser, Perm: 5, ID: 1000},
		{Tag: ondisk.ACLGroupObj, Perm: 5}, {Tag: ondisk.ACLMask, Perm: 5}, {Tag: ondisk.ACLOther, Perm: 4}})
	x, err := pack.XattrFromLinux("system.posix_acl_default", linux)
	if err != nil || x.NS != ondisk.NSTrusted || string(x.Name) != ondisk.SGIACLDefault {
		t.Fatalf("%+v %v", x, err)
	}
	ents, err := ondisk.DecodeXFSACL(x.Value)
	if err != nil || !bytes.Equal(ondisk.PosixACLXattr(ents), linux) {
		t.Errorf("ACL round trip: %v %x", err, x.Value)
	}
	if ents[0].ID != ondisk.ACLUndefinedID || ents[1].ID != 1000 {
		t.Errorf("ACL ids %+v", ents)
	}
	if _, err := pack.XattrFromLinux("system.posix_acl_access", []byte{1, 2, 3}); err == nil {
		t.Error("malformed ACL accepted")
	}
}

func TestAGBtreeShape(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []int
	}{{0, []int{1}}, {1, []int{1}}, {505, []int{1}}, {506, []int{2, 1}}, {505 * 336, []int{336, 1}}, {505*336 + 1, []int{337, 2, 1}}} {
		got, err := pack.AGBtreeShape(4096, ondisk.BnobtMagic, c.n)
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%d records: %v %v, want %v", c.n, got, err, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%d records: %v, want %v", c.n, got, c.want)
			}
		}
	}
}
