package image

import (
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/oracle"
)

// TestMountedAt: an image file is seen as mounted through its loop device,
// writable or not as the mount is, and so is the loop device itself; an
// unmounted image is not; a missing path is an error naming it.
func TestMountedAt(t *testing.T) {
	if _, err := MountedAt(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: %v", err)
	}
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "512m")
	if m, err := MountedAt(img); m != nil || err != nil {
		t.Fatalf("unmounted image: %+v %v", m, err)
	}
	mnt := oracle.Mount(t, img, false)
	m, err := MountedAt(img)
	if err != nil || m == nil || m.Point != mnt || !m.Writable {
		t.Fatalf("read-write mount at %s: %+v %v", mnt, m, err)
	}
	// The loop device behind the mount is mounted too.
	out := oracle.Run(t, "findmnt", "-n", "-o", "SOURCE", "--target", mnt)
	if dev := strings.TrimSpace(out); strings.HasPrefix(dev, "/dev/loop") {
		if m, err := MountedAt(dev); err != nil || m == nil || m.Point != mnt {
			t.Errorf("loop device %s: %+v %v", dev, m, err)
		}
	} else {
		t.Errorf("findmnt says %q is behind %s", dev, mnt)
	}
	oracle.Run(t, "mount", "-o", "remount,ro", mnt)
	if m, err := MountedAt(img); err != nil || m == nil || m.Writable {
		t.Errorf("read-only mount: %+v %v", m, err)
	}
	oracle.Unmount(t, mnt)
	if m, err := MountedAt(img); m != nil || err != nil {
		t.Errorf("after unmounting: %+v %v", m, err)
	}
}
