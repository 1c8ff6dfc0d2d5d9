package build

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Source trees may be deeper than PATH_MAX allows a path to be (the kernel,
// cp -a and dump handle them); the scan then names an entry relative to
// its open directory instead of by its whole path.

// popLongPath is where a path is too long for the kernel to take whole.
const popLongPath = unix.PathMax - 1

// popOpen opens path with flags (which hold O_NOFOLLOW: the last component
// is never followed), retrying without O_NOATIME where the caller may not
// use it, and walking a path too long for the kernel a piece at a time.
func popOpen(path string, flags int) (int, error) {
	open := func(dirfd int, p string) (int, error) {
		fd, err := unix.Openat(dirfd, p, flags, 0)
		if errors.Is(err, unix.EPERM) && flags&unix.O_NOATIME != 0 {
			fd, err = unix.Openat(dirfd, p, flags&^unix.O_NOATIME, 0)
		}
		return fd, err
	}
	if len(path) < popLongPath {
		return open(unix.AT_FDCWD, path)
	}
	pfd, name, err := popOpenParent(path)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	return open(pfd, name)
}

// popOpenParent opens (O_PATH) the directory holding path's last
// component, walking the path in pieces shorter than PATH_MAX, and
// returns it with that component.
func popOpenParent(path string) (int, string, error) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return -1, "", fmt.Errorf("%s: %w", path, unix.ENAMETOOLONG)
	}
	rest, name := path[:i], path[i+1:]
	fd := unix.AT_FDCWD
	if rest == "" {
		rest = "/"
	}
	for rest != "" {
		piece := rest
		if len(piece) >= popLongPath {
			cut := strings.LastIndexByte(rest[:popLongPath], '/')
			if cut <= 0 {
				if fd != unix.AT_FDCWD {
					unix.Close(fd)
				}
				return -1, "", fmt.Errorf("%s: a path component is too long: %w", path, unix.ENAMETOOLONG)
			}
			piece = rest[:cut]
		}
		nfd, err := unix.Openat(fd, piece, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if fd != unix.AT_FDCWD {
			unix.Close(fd)
		}
		if err != nil {
			return -1, "", err
		}
		fd = nfd
		rest = strings.TrimLeft(rest[len(piece):], "/")
	}
	return fd, name, nil
}

// popEntryPath names an entry for the path-only xattr calls: its path, or
// when that is too long, the entry through its open directory in /proc.
func popEntryPath(dirfd int, name, path string) string {
	if len(path) < popLongPath || dirfd < 0 || name == "" {
		return path
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
}

// popReadlink reads a symlink's target, by name in its open directory
// when there is one.
func popReadlink(dirfd int, name, path string) (string, error) {
	if dirfd < 0 || name == "" {
		dirfd, name = unix.AT_FDCWD, path
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
