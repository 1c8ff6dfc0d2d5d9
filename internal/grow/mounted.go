package grow

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountedAt returns where the image file or block device at path is
// mounted, or "" if it is not. A block device is mounted when its device
// number appears in the mount table; an image file when a loop device
// backed by it (same device and inode) does.
func mountedAt(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
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
		return "", nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint ...
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && devs[fl[2]] {
			return unescapeMount(fl[4]), nil
		}
	}
	return "", sc.Err()
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
