package image

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounted says where a device or image file is mounted.
type Mounted struct {
	Point    string // the first mount point in the mount table
	Writable bool   // some mount of it is read-write
}

// MountedAt tells whether the image file or block device at path is
// mounted, and where; nil means it is not. A block device is mounted when
// its device number appears in the mount table; an image file when a loop
// device backed by it (same device and inode) does. Tools that write an
// image refuse a mounted one; tools that read it refuse a writable mount,
// whose on-disk state lags behind the kernel's.
func MountedAt(path string) (*Mounted, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	devs := map[string]bool{}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		devs[fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))] = true
	case unix.S_IFREG:
		loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, bf := range loops {
			b, err := os.ReadFile(bf)
			if err != nil {
				continue
			}
			var lst unix.Stat_t
			name := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
			if unix.Stat(name, &lst) != nil || lst.Dev != st.Dev || lst.Ino != st.Ino {
				continue
			}
			if d, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(bf)), "dev")); err == nil {
				devs[strings.TrimSpace(string(d))] = true
			}
		}
	}
	if len(devs) == 0 {
		return nil, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var m *Mounted
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fl := strings.Fields(sc.Text())
		if len(fl) > 5 && devs[fl[2]] {
			if m == nil {
				m = &Mounted{Point: unescapeMount(fl[4])}
			}
			m.Writable = m.Writable || strings.HasPrefix(fl[5], "rw")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if v, ok := octal3(s[i+1 : min(i+4, len(s))]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
