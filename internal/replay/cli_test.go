package replay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/clitest"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
)

// TestCheckReplayCLI runs check as a user does: a dirty log exits 2 with a
// hint to use --replay; --replay replays, checks and exits 0; a log only the
// kernel can recover exits 2 and the image stays dirty; a quota-enabled
// mount's log (dquot items) is refused the same way (skipped on kernels
// without XFS quota, as here).
func TestCheckReplayCLI(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	bin := clitest.Build(t, "xfskit/cmd/check", "check")

	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	crash(t, mnt)
	if _, e, code := clitest.Run(bin, img); code != 2 || !strings.Contains(e, "--replay") {
		t.Fatalf("dirty log: exit %d (want 2), stderr %q", code, e)
	}
	if _, e, code := clitest.Run(bin, "--replay", img); code != 0 || !strings.Contains(e, "log replayed") || !strings.Contains(e, "clean") {
		t.Fatalf("--replay: exit %d (want 0), stderr %q", code, e)
	}
	if _, e, code := clitest.Run(bin, img); code != 0 {
		t.Fatalf("after --replay: exit %d, stderr %q", code, e)
	}

	// Deleted while open: refused, still dirty.
	img = oracle.Mkfs(t, "300m")
	mnt = oracle.Mount(t, img, false)
	logtest.Crash(t, mnt, true)
	if _, e, code := clitest.Run(bin, "--replay", img); code != 2 || !strings.Contains(e, "deleted while still open") {
		t.Fatalf("--replay of a log needing the kernel: exit %d (want 2), stderr %q", code, e)
	}
	if _, _, code := clitest.Run(bin, img); code != 2 {
		t.Fatalf("a refused replay left the log clean (exit %d)", code)
	}

	// Quota: dquot items are refused.
	t.Run("quota", func(t *testing.T) {
		img = oracle.Mkfs(t, "300m")
		qmnt := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(qmnt, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, code := oracle.RunStatus("mount", "-t", "xfs", "-o", "loop,usrquota", img, qmnt); code != 0 {
			t.Skipf("no quota mount on this kernel (CONFIG_XFS_QUOTA?): %s", out)
		}
		t.Cleanup(func() { oracle.Unmount(t, qmnt) })
		oracle.MustBeMounted(t, qmnt)
		for i := 0; i < 20; i++ {
			if err := os.WriteFile(filepath.Join(qmnt, strings.Repeat("q", i+1)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		crash(t, qmnt)
		if _, e, code := clitest.Run(bin, "--replay", img); code != 2 || !strings.Contains(e, "quota") {
			t.Fatalf("--replay of a quota log: exit %d (want 2), stderr %q", code, e)
		}
	})
}
