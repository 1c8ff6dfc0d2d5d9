package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPopParseProto checks the prototype file grammar without writing an
// image: comments, modes, devices, symlinks, nesting and errors.
func TestPopParseProto(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte("abc"), 0o644)
	write := func(s string) string {
		p := filepath.Join(dir, "proto")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Unix(1234567890, 0)
	tr, err := popParseProto(write("boot\n10 20\nd--750 1 2 : root\n a d--755 0 0\n  f ---644 3 4 "+data+"\n  $\n z l--777 0 0 /x\n c c--600 0 0 4 5\n r r--600 0 0 2k\n$\n"), now)
	if err != nil {
		t.Fatal(err)
	}
	r := tr.root
	if r.mode != unix.S_IFDIR|0o750 || r.uid != 1 || r.gid != 2 || len(r.kids) != 4 || r.subdirs != 1 {
		t.Fatalf("root %+v", r)
	}
	names := []string{r.kids[0].name, r.kids[1].name, r.kids[2].name, r.kids[3].name}
	if names[0] != "a" || names[1] != "c" || names[2] != "r" || names[3] != "z" {
		t.Errorf("entries %v, want name order", names)
	}
	f := r.kids[0].kids[0]
	if f.name != "f" || f.src != data || f.mode != unix.S_IFREG|0o644 || f.uid != 3 || f.mtime.Sec != now.Unix() {
		t.Errorf("file %+v", f)
	}
	if c := r.kids[1]; c.mode != unix.S_IFCHR|0o600 || c.rdev != 4<<18|5 {
		t.Errorf("device %+v", c)
	}
	if res := r.kids[2]; res.reserve != 2048 || res.resSpec != "2k" {
		t.Errorf("reserved %+v", res)
	}
	if l := r.kids[3]; l.target != "/x" || l.mode != unix.S_IFLNK|0o777 {
		t.Errorf("symlink %+v", l)
	}
	if tr.inodes != 6 {
		t.Errorf("%d inodes, want 6", tr.inodes)
	}
	for _, bad := range []string{
		"b\n1 2\nd--755 0 0\n", // premature EOF
		"b\n1 2\nx--755 0 0\n$\n",
		"b\n1 2\nd--755 0 0\n f ---644 0 0 /nonexistent/file\n$\n",
		"b\n1 2\nd--758 0 0\n$\n",
		"b\n1 2\nd--755 0 0\n f c--644 0 0 x 1\n$\n",
		"b\n1 2\nd--755 0 0\n f p--644 0 0\n f p--644 0 0\n$\n",
		"b\n1 2\n---755 0 0 " + data + "\n",
		"no final newline",
	} {
		if _, err := popParseProto(write(bad), now); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
