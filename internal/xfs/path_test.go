package xfs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// dtOutcome is an inode number or the errno a resolution failed with.
type dtOutcome struct {
	ino   uint64
	errno syscall.Errno
}

func (o dtOutcome) String() string {
	if o.errno != 0 {
		return o.errno.Error()
	}
	return fmt.Sprintf("ino %d", o.ino)
}

func dtKernelResolve(mnt, p string, follow bool) dtOutcome {
	var st syscall.Stat_t
	full := mnt + "/" + strings.TrimPrefix(p, "/")
	var err error
	if follow {
		err = syscall.Stat(full, &st)
	} else {
		err = syscall.Lstat(full, &st)
	}
	if err != nil {
		return dtOutcome{errno: err.(syscall.Errno)}
	}
	return dtOutcome{ino: st.Ino}
}

// ResolvePath against the kernel's own path walk (stat/lstat through the
// mount) for relative symlinks, "..", ".", repeated and trailing slashes,
// dangling links, loops, the 40-link limit and non-directories; absolute
// symlink targets, which the kernel would resolve on the host, are
// checked against the image paths they name.
func TestResolvePath(t *testing.T) {
	paths := []string{
		"", "/", "/p", "p/a/b/c", "/p/a//b/./c/", "/p/a/b/../b/c", "/p/rel", "/p/rel/c", "/p/rel/",
		"/p/a/b/up", "/p/a/b/up/a/b", "/p/filelink", "/p/a/b/file", "/p/dangling", "/p/loop1", "/p/self/x",
		"/p/chain0", "/p/xchain0", "/p/a/b/file/x", "/p/a/b/file/", "/p/missing", "/p/missing/x",
		"/p/filelink/", "/p/rel/../b", "/p/" + strings.Repeat("n", 256), "/p/a/.", "/p/rel/.",
		"/sf/sym", "/p/dirlink/c", "/p/dirlink",
	}
	kern := map[string][2]dtOutcome{}
	var absIno, absBIno, absLinkIno uint64
	fx := dtBuild(t, nil, nil, func(mnt string) {
		p := filepath.Join(mnt, "p")
		dtMust(t, os.MkdirAll(filepath.Join(p, "a/b/c"), 0o755))
		dtTouch(t, filepath.Join(p, "a/b"), []string{"file"})
		dtTouch(t, filepath.Join(mnt, "sf"), []string{"reg"})
		links := map[string]string{
			"rel": "a/b", "abs": "/p/a", "a/b/up": "../..", "filelink": "a/b/file", "dangling": "nowhere",
			"loop1": "loop2", "loop2": "loop1", "self": "self", "dirlink": "rel",
		}
		for i := 0; i < 40; i++ {
			links[fmt.Sprintf("chain%d", i)] = fmt.Sprintf("chain%d", i+1)
			links[fmt.Sprintf("xchain%d", i)] = fmt.Sprintf("xchain%d", i+1)
		}
		links["chain39"] = "a"
		links["xchain40"] = "a"
		for name, target := range links {
			dtMust(t, os.Symlink(target, filepath.Join(p, name)))
		}
		// A long remote symlink target (not inline in the inode).
		dtMust(t, os.Symlink("./"+strings.Repeat("./", 300)+"reg", filepath.Join(mnt, "sf/sym")))
		for _, q := range paths {
			kern[q] = [2]dtOutcome{dtKernelResolve(mnt, q, false), dtKernelResolve(mnt, q, true)}
		}
		absIno = dtStatIno(t, filepath.Join(p, "a"))
		absBIno = dtStatIno(t, filepath.Join(p, "a/b"))
		absLinkIno = dtStatIno(t, filepath.Join(p, "abs"))
	})
	resolve := func(p string, follow bool) dtOutcome {
		ip, err := fx.fs.ResolvePath(p, follow)
		if err != nil {
			var errno syscall.Errno
			if !errors.As(err, &errno) {
				t.Errorf("ResolvePath(%q, %v): error %v carries no errno", p, follow, err)
				return dtOutcome{errno: syscall.EIO}
			}
			return dtOutcome{errno: errno}
		}
		return dtOutcome{ino: ip.Ino}
	}
	for _, p := range paths {
		for i, follow := range []bool{false, true} {
			if got, want := resolve(p, follow), kern[p][i]; got != want {
				t.Errorf("ResolvePath(%q, follow=%v) = %v, kernel %v", p, follow, got, want)
			}
		}
	}
	if got := resolve("/p/xchain0", true); got.errno != syscall.ELOOP {
		t.Errorf("41-link chain: %v, want ELOOP", got)
	}
	for p, want := range map[string]dtOutcome{
		"/p/abs/b": {ino: absBIno}, "/p/abs/": {ino: absIno}, "/p/abs/..": kern["/p"][1],
		"/..": {ino: fx.dirs["."].ino}, "/../p/abs": {ino: absIno},
	} {
		if got := resolve(p, true); got != want {
			t.Errorf("ResolvePath(%q) = %v, want %v", p, got, want)
		}
	}
	if got := resolve("/p/abs", false); got.ino != absLinkIno {
		t.Errorf("ResolvePath(/p/abs, nofollow) = %v, want the link %d", got, absLinkIno)
	}
}
