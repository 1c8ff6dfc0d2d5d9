package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/oracle"
)

// TestIncompleteSessionAppliedAgain: a cumulative restore of a cut-short
// copy of a level 1 stream reports what it lost, and the same session from
// an intact copy then completes the tree. Before, the damaged run recorded
// the session as applied and the intact copy was refused ("already
// applied"): the lost files could only come back by starting over from
// level 0. A session applied completely is still refused.
func TestIncompleteSessionAppliedAgain(t *testing.T) {
	oracle.Require(t, oracle.Root)
	c := newChain(t)
	c.step0()
	c.dump("l0", 0, "", 1)
	c.step1()
	for i := 0; i < 40; i++ { // enough data that half the stream loses files
		c.b.write(filepath.Join("d1", "bulk"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))), pattern(i, 150000))
	}
	l1 := c.dump("l1", 1, "l0", 1)
	if len(l1.files) != 1 {
		t.Fatalf("level 1 streams: %v", l1.files)
	}
	whole, err := os.ReadFile(l1.files[0])
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "l1-cut")
	if err := os.WriteFile(cut, whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "dest")
	requireOK(t, runRestore(t, Options{Sources: c.sessions["l0"].files, Dest: dest, Cumulative: true}))
	if res := runRestore(t, Options{Sources: []string{cut}, Dest: dest, Cumulative: true}); res.OK() {
		t.Fatal("a cut-short level 1 stream restored without problems")
	}
	res := runRestore(t, Options{Sources: l1.files, Dest: dest, Cumulative: true})
	requireOK(t, res)
	if len(res.Sessions) != 1 || res.Sessions[0].Skipped || !strings.Contains(res.Sessions[0].Note, "again") {
		t.Errorf("sessions of the second run: %+v", res.Sessions)
	}
	sameTree(t, c.b.root, dest)
	if _, err := Restore(t.Context(), Options{Sources: l1.files, Dest: dest, Cumulative: true}); err == nil || !strings.Contains(err.Error(), "already applied") {
		t.Errorf("a session applied completely, once more: %v", err)
	}
}
