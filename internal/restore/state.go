package restore

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Files in the state directory.
const (
	stateFile    = "state.gob"     // tree and session chain after the last applied session
	progressFile = "progress.json" // a restore is under way (or was interrupted)
	journalFile  = "journal"       // steps of the restore under way
	lockFile     = "lock"
	stateVersion = 1
)

// stateDir is the housekeeping directory, used through its descriptor.
type stateDir struct {
	path   string // for messages
	fd     int
	lockFd int
	inDest bool // the default location inside the destination
}

// openStateDir opens (creating if needed) and locks the state directory.
func openStateDir(t *target, dest, dir string) (*stateDir, error) {
	s := &stateDir{fd: -1, lockFd: -1}
	if dir == "" {
		// Inside the destination: opened relative to its descriptor, never
		// through a symlink.
		s.inDest = true
		s.path = filepath.Join(dest, stateDirName)
		if err := unix.Mkdirat(t.root, stateDirName, 0o700); err != nil && err != unix.EEXIST {
			return nil, fmt.Errorf("state directory %s: %w", s.path, err)
		}
		fd, err := unix.Openat(t.root, stateDirName, dirFlags, 0)
		if err != nil {
			return nil, fmt.Errorf("state directory %s: %w", s.path, err)
		}
		s.fd = fd
	} else {
		s.path = dir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("state directory %s: %w", dir, err)
		}
		s.fd = fd
	}
	lfd, err := unix.Openat(s.fd, lockFile, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("state directory %s: lock: %w", s.path, err)
	}
	s.lockFd = lfd
	if err := unix.Flock(lfd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.close()
		return nil, fmt.Errorf("state directory %s is in use by another restore", s.path)
	}
	return s, nil
}

func (s *stateDir) close() {
	if s.lockFd >= 0 {
		unix.Close(s.lockFd)
		s.lockFd = -1
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

func (s *stateDir) p(name string) string { return procPath(s.fd, name) }

func (s *stateDir) exists(name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(s.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// writeAtomic replaces name with data: temporary file, fsync, rename,
// fsync of the directory.
func (s *stateDir) writeAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	fd, err := unix.Openat(s.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(s.path, tmp), err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(s.fd, tmp, s.fd, name)
	}
	if err == nil {
		err = unix.Fsync(s.fd)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(s.path, name), err)
	}
	return nil
}

func (s *stateDir) read(name string) ([]byte, error) {
	fd, err := unix.Openat(s.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(f)
}

func (s *stateDir) remove(name string) {
	unix.Unlinkat(s.fd, name, 0)
}

// removeAll removes restore's files and, when it is the default one inside
// the destination and nothing else is left in it, the directory itself.
func (s *stateDir) removeAll(t *target) {
	for _, n := range []string{progressFile, journalFile, journalFile + ".tmp", progressFile + ".tmp", lockFile} {
		s.remove(n)
	}
	inDest := s.inDest
	s.close()
	if inDest {
		unix.Unlinkat(t.root, stateDirName, unix.AT_REMOVEDIR) // fails harmlessly if not empty
	}
}

// ---- the committed state ----

type chainEntry struct {
	Session string
	Level   uint32
	Base    string
	Created time.Time
	Label   string
	// Incomplete: applied with problems (a damaged or partial copy of
	// its streams, things the destination refused); while it is the last
	// session of the chain it can be applied again to complete it.
	Incomplete bool
}

type savedDir struct {
	Ino, Parent uint64
	Name        string
}

type savedName struct {
	Dir  uint64
	Name string
}

type savedFile struct {
	Ino   uint64
	Type  uint8
	Size  int64
	Names []savedName
}

// savedState is the tree as of the last applied session. gob keeps names
// byte for byte (they need not be UTF-8).
type savedState struct {
	Version int
	FSUUID  string
	Chain   []chainEntry
	Root    uint64
	Dirs    []savedDir
	Files   []savedFile
}

func (s *stateDir) loadState() (*savedState, error) {
	b, err := s.read(stateFile)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.path, stateFile), err)
	}
	var st savedState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: unreadable (%v)", filepath.Join(s.path, stateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, this restore knows %d", filepath.Join(s.path, stateFile), st.Version, stateVersion)
	}
	return &st, nil
}

func (s *stateDir) saveState(st *savedState) error {
	st.Version = stateVersion
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(st); err != nil {
		return err
	}
	return s.writeAtomic(stateFile, b.Bytes())
}

// ---- the restore under way ----

// progress marks a restore under way; it names what -R must continue.
type progress struct {
	Session    string    `json:"session"`
	Sessions   []string  `json:"sessions,omitempty"` // all sessions of a cumulative run
	Level      uint32    `json:"level"`
	Cumulative bool      `json:"cumulative"`
	Subtrees   []string  `json:"subtrees,omitempty"`
	Started    time.Time `json:"started"`
}

func (s *stateDir) loadProgress() (*progress, error) {
	b, err := s.read(progressFile)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.path, progressFile), err)
	}
	var p progress
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: unreadable (%v)", filepath.Join(s.path, progressFile), err)
	}
	return &p, nil
}

func (s *stateDir) saveProgress(p *progress) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return s.writeAtomic(progressFile, append(b, '\n'))
}

// journal records completed steps of the restore under way, one per line.
// Lines are written after the step is complete; a line lost to a crash
// only makes a resumed restore redo that step. The file is not fsync'd: a
// killed process loses nothing the kernel already has (restored data is
// not fsync'd either).
type journal struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	err     error
	pending int
	last    time.Time
	files   map[uint64]bool // files complete (from an earlier run)
	marks   map[string]bool // phases complete
}

const (
	markMoved  = "P1" // phase 1 of a cumulative restore: old names out of the way
	markPlaced = "P2" // phase 2: directories made, moved things in place
	markFiles  = "FD" // all streams read
)

func (s *stateDir) openJournal(fresh bool) (*journal, error) {
	j := &journal{files: map[uint64]bool{}, marks: map[string]bool{}}
	if !fresh {
		b, err := s.read(journalFile)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", filepath.Join(s.path, journalFile), err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "F ") {
				if ino, err := strconv.ParseUint(line[2:], 10, 64); err == nil {
					j.files[ino] = true
				}
			} else if line != "" && !strings.Contains(line, " ") {
				j.marks[line] = true
			}
		}
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if fresh {
		flags |= unix.O_TRUNC
	}
	fd, err := unix.Openat(s.fd, journalFile, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.path, journalFile), err)
	}
	j.f = os.NewFile(uintptr(fd), journalFile)
	j.w = bufio.NewWriterSize(j.f, 64<<10)
	return j, nil
}

func (j *journal) add(line string, flush bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.WriteString(line)
	j.wrote(flush)
}

// wrote ends a line. Lines go out in small batches: a killed process
// loses at most the last few, whose files a resumed restore then writes
// again.
func (j *journal) wrote(flush bool) {
	if err := j.w.WriteByte('\n'); err != nil && j.err == nil {
		j.err = err
	}
	j.pending++
	if flush || j.pending >= 32 || time.Since(j.last) > 100*time.Millisecond {
		if err := j.w.Flush(); err != nil && j.err == nil {
			j.err = err
		}
		j.pending = 0
		j.last = time.Now()
	}
}

func (j *journal) fileDone(ino uint64) {
	var b [24]byte
	line := strconv.AppendUint(append(b[:0], "F "...), ino, 10)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(line)
	j.wrote(false)
}

func (j *journal) mark(m string) { j.add(m, true); j.marks[m] = true }

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); err != nil && j.err == nil {
		j.err = err
	}
	j.f.Close()
	return j.err
}

// loadFrom reads the committed state of the state directory at path (tests
// and tools).
func (s *stateDir) loadFrom(path string) (*savedState, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	s.fd, s.path = fd, path
	defer func() { s.fd = -1 }()
	return s.loadState()
}
