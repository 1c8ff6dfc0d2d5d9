package restore

import "testing"

// TestProblemString: a problem about the whole run (no path, no inode) is
// its reason alone — the command prefixes "restore: " (it printed
// "restore: restore: stream 1 of 3 ... was not given").
func TestProblemString(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "a/b", Ino: 7, Reason: "r"}, "a/b (inode 7): r"},
		{Problem{Path: "a/b", Reason: "r"}, "a/b: r"},
		{Problem{Ino: 7, Reason: "r"}, "inode 7: r"},
		{Problem{Reason: "stream 1 of 3 was not given"}, "stream 1 of 3 was not given"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}
