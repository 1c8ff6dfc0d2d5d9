package check

import (
	"encoding/binary"

	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// errStop ends a run early without an error (a dirty log: the metadata is
// legitimately inconsistent until the log is replayed).
type errStop struct{}

func (errStop) Error() string { return "stop" }

// checkLog finds the log's head and tail. A dirty log stops the check, as
// xfs_repair -n does: the metadata is not expected to be consistent until
// the log is replayed.
func (c *checker) checkLog() error {
	st, err := xlog.Find(c.fs)
	if err != nil {
		if isIOError(err) {
			return err
		}
		c.r.fsf("log", "%v", err)
		return nil
	}
	c.r.LogInfo = st.String()
	if !st.Zeroed {
		c.headLSN = ondisk.MakeLSN(st.HeadCycle, st.HeadBlock)
		c.fs.LSNHook = func(ino uint64, what string, daddr, lsn uint64) {
			if c.lsnAhead(lsn) {
				c.r.inof(ino, what, "daddr %d: LSN %s is ahead of the log head %s", daddr, lsnString(lsn), c.headLSN)
			}
		}
	}
	if st.Torn != nil {
		c.r.LogInfo += "; torn write: " + st.Torn.Err.Error()
	}
	if !st.Clean {
		c.r.DirtyLog = true
		return errStop{}
	}
	return nil
}

// noteBlockLSN passes the LSN of a file-owned metadata block the checker
// reads itself (directory leaf, node and free blocks; the engine notes the
// blocks it reads) to the same test as the engine's (fs.LSNHook).
func (c *checker) noteBlockLSN(ino, fsb uint64, buf []byte) {
	st := ondisk.StampOf(buf)
	if c.fs.LSNHook == nil || !st.Ok || st.LSNOff < 0 || len(buf) < st.LSNOff+8 {
		return
	}
	c.fs.LSNHook(ino, st.Name, c.sb.FSBToDaddr(fsb), binary.BigEndian.Uint64(buf[st.LSNOff:]))
}

// lsnAhead reports metadata stamped with a log sequence number the log has
// not reached: after a crash such a block would be "newer" than the log
// and recovery would skip replaying into it (xfs_repair reports the same).
// Returns true when it reported.
func (c *checker) lsnAhead(lsn uint64) bool {
	// NULLCOMMITLSN (all ones) marks blocks written outside the log.
	return c.headLSN != 0 && lsn != ^uint64(0) && ondisk.CompareLSN(ondisk.LSN(lsn), c.headLSN) > 0
}

func lsnString(lsn uint64) string { return ondisk.LSN(lsn).String() }
