package inventory

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Status is the state of a session or stream.
type Status string

const (
	// StatusInProgress: begun and not finished. A dump killed without a
	// chance to clean up leaves its session in this state.
	StatusInProgress Status = "in-progress"
	// StatusComplete: finished successfully; only complete sessions serve
	// as bases for incremental dumps.
	StatusComplete Status = "complete"
	// StatusInterrupted: stopped before the end (signal, media full, error)
	// and resumable from its checkpoints.
	StatusInterrupted Status = "interrupted"
)

func (s Status) valid() bool {
	return s == StatusInProgress || s == StatusComplete || s == StatusInterrupted
}

// Filesystem identifies a dumped filesystem.
type Filesystem struct {
	UUID   string `json:"uuid"`   // XFS superblock UUID
	Label  string `json:"label"`  // superblock label
	Source string `json:"source"` // device, image file or mount point dumped from
}

// Counts are what a session dumped.
type Counts struct {
	Files int64 `json:"files"` // non-directory inodes
	Dirs  int64 `json:"dirs"`  // directories
	Bytes int64 `json:"bytes"` // bytes written to all streams
}

// SessionInfo describes a dump session as it begins.
type SessionInfo struct {
	ID          string    // session UUID (NewSessionID makes one)
	FSUUID      string    // filesystem UUID
	Level       int       // dump level 0-9
	BaseID      string    // base session for level > 0; "" for none
	Subtrees    []string  // selected subtrees, relative to the fs root; empty = whole fs
	Label       string    // session label (-L)
	Start       time.Time // start time; zero means now
	Compression string    // compression method, "" for none
	// Streams are recorded in the same transaction as the session, each
	// with its Checkpoint (Data included) if not nil, so that a dump
	// killed at any moment leaves either no session or one that -R can
	// resume.
	Streams []Stream
}

// execer is what *sql.DB and *sql.Tx share.
type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

// Session is a dump session as recorded, with its streams.
type Session struct {
	ID          string    `json:"id"`
	FSUUID      string    `json:"fs_uuid"`
	FSLabel     string    `json:"fs_label"`
	FSSource    string    `json:"fs_source"`
	Level       int       `json:"level"`
	BaseID      string    `json:"base_id,omitempty"`
	Subtrees    []string  `json:"subtrees"` // canonical: sorted, relative, no duplicates; empty = whole fs
	Label       string    `json:"label"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"` // zero while in progress
	Status      Status    `json:"status"`
	Counts      Counts    `json:"counts"`
	Compression string    `json:"compression,omitempty"`
	Streams     []Stream  `json:"streams"`
}

// Stream is one output stream of a session (index Index of Count).
type Stream struct {
	SessionID  string      `json:"-"`
	Index      int         `json:"index"`
	Count      int         `json:"count"`
	Dest       string      `json:"dest"`
	MediaLabel string      `json:"media_label,omitempty"`
	Bytes      int64       `json:"bytes"`
	Status     Status      `json:"status"` // "" in AddStream means in-progress
	Media      []MediaFile `json:"media_files"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"` // latest, without Data; nil if none
}

// MediaFile is one file (or tape file) a stream was written to, in order.
type MediaFile struct {
	SessionID string `json:"-"`
	Stream    int    `json:"-"`
	Seq       int    `json:"seq"`
	Path      string `json:"path"`
	Bytes     int64  `json:"bytes"`
}

// Checkpoint is a resume point of one stream: everything up to and
// including inode LastIno is in the stream, which is Offset bytes long.
// Data is opaque to the inventory (the dumper's own resume state).
type Checkpoint struct {
	SessionID string    `json:"-"`
	Stream    int       `json:"-"`
	LastIno   uint64    `json:"last_ino"`
	Offset    int64     `json:"offset"`
	Data      []byte    `json:"-"`
	Time      time.Time `json:"time"` // when recorded; zero in Checkpoint() means now
}

// NewSessionID returns a fresh random session UUID.
func NewSessionID() string { return uuid.NewString() }

// canonUUID returns the canonical lower-case form of a UUID string.
func canonUUID(what, s string) (string, error) {
	u, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%s %q is not a UUID", what, s)
	}
	return u.String(), nil
}

// CanonicalSubtrees returns the form subtree selections are stored and
// compared in: each path cleaned and made relative to the fs root, sorted,
// duplicates removed; a selection containing the root itself ("/", "", ".")
// is the whole filesystem and becomes empty.
func CanonicalSubtrees(subtrees []string) []string {
	out := make([]string, 0, len(subtrees))
	for _, s := range subtrees {
		c := strings.TrimPrefix(path.Clean("/"+s), "/")
		if c == "" {
			return []string{}
		}
		out = append(out, c)
	}
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i == 0 || s != out[j-1] {
			out[j] = s
			j++
		}
	}
	return out[:j]
}

// subtreesKey is the stored form of a selection: a JSON list of the
// canonical subtrees, each through EncodePath.
func subtreesKey(subtrees []string) string {
	c := CanonicalSubtrees(subtrees)
	for i, p := range c {
		c[i] = EncodePath(p)
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// parseSubtrees undoes subtreesKey.
func parseSubtrees(key string) ([]string, error) {
	var c []string
	if err := json.Unmarshal([]byte(key), &c); err != nil {
		return nil, err
	}
	for i, p := range c {
		var err error
		if c[i], err = DecodePath(p); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// EncodePath makes a path safe to carry in a JSON string, which holds only
// UTF-8 while Linux names are bytes: a path that is not valid UTF-8 becomes
// NUL followed by its bytes in hex (no path holds a NUL); others are kept
// as they are, the form older versions wrote.
func EncodePath(p string) string {
	if utf8.ValidString(p) && !strings.HasPrefix(p, "\x00") {
		return p
	}
	return "\x00" + hex.EncodeToString([]byte(p))
}

// DecodePath undoes EncodePath.
func DecodePath(s string) (string, error) {
	h, ok := strings.CutPrefix(s, "\x00")
	if !ok {
		return s, nil
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", fmt.Errorf("encoded path %q: %w", s, err)
	}
	return string(b), nil
}

func nsOrNow(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().UnixNano()
	}
	return t.UnixNano()
}

// RecordFilesystem adds fs to the inventory or updates its label and source.
func (d *DB) RecordFilesystem(fs Filesystem) error {
	id, err := canonUUID("filesystem UUID", fs.UUID)
	if err != nil {
		return d.err("record filesystem", err)
	}
	now := time.Now().UnixNano()
	_, err = d.db.Exec(`INSERT INTO filesystems(uuid, label, source, first_seen_ns, last_seen_ns)
		VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(uuid) DO UPDATE SET label = excluded.label, source = excluded.source,
			last_seen_ns = excluded.last_seen_ns`, id, fs.Label, fs.Source, now, now)
	if err != nil {
		return d.err("record filesystem "+id, err)
	}
	return nil
}

// BeginSession records a new session in progress. The filesystem is added
// (with empty label and source) if RecordFilesystem has not been called.
// Session IDs are unique; beginning one twice is an error.
func (d *DB) BeginSession(s SessionInfo) error {
	op := "begin session " + s.ID
	id, err := canonUUID("session ID", s.ID)
	if err != nil {
		return d.err(op, err)
	}
	fsid, err := canonUUID("filesystem UUID", s.FSUUID)
	if err != nil {
		return d.err(op, err)
	}
	if s.Level < 0 || s.Level > 9 {
		return d.err(op, fmt.Errorf("level %d out of range 0-9", s.Level))
	}
	var base any
	if s.BaseID != "" {
		b, err := canonUUID("base session ID", s.BaseID)
		if err != nil {
			return d.err(op, err)
		}
		base = b
	}
	start := nsOrNow(s.Start)
	err = d.inTx(context.Background(), func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		if _, err := tx.Exec(`INSERT INTO filesystems(uuid, first_seen_ns, last_seen_ns) VALUES(?, ?, ?)
			ON CONFLICT(uuid) DO UPDATE SET last_seen_ns = excluded.last_seen_ns`, fsid, now, now); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO sessions(id, fs_uuid, level, base_id, subtrees, label, start_ns, status, compression)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, fsid, s.Level, base, subtreesKey(s.Subtrees), s.Label, start, string(StatusInProgress), s.Compression)
		if isDup(err) {
			return errors.New("session already exists")
		}
		if err != nil {
			return err
		}
		for _, st := range s.Streams {
			st.SessionID = id
			if err := addStream(tx, st); err != nil {
				return err
			}
			if c := st.Checkpoint; c != nil {
				c.SessionID, c.Stream = id, st.Index
				if err := checkpoint(tx, *c); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return d.err(op, err)
	}
	return nil
}

// AddStream records stream s.Index (of s.Count) of session s.SessionID.
func (d *DB) AddStream(s Stream) error {
	if err := addStream(d.db, s); err != nil {
		return d.err(fmt.Sprintf("add stream %d of session %s", s.Index, s.SessionID), err)
	}
	return nil
}

func addStream(x execer, s Stream) error {
	id, err := canonUUID("session ID", s.SessionID)
	if err != nil {
		return err
	}
	if s.Index < 0 || s.Count <= s.Index {
		return fmt.Errorf("stream index %d not in 0..%d", s.Index, s.Count-1)
	}
	st := s.Status
	if st == "" {
		st = StatusInProgress
	}
	if !st.valid() {
		return fmt.Errorf("bad status %q", st)
	}
	_, err = x.Exec(`INSERT INTO streams(session_id, idx, count, dest, media_label, bytes, status)
		VALUES(?, ?, ?, ?, ?, ?, ?)`, id, s.Index, s.Count, s.Dest, s.MediaLabel, s.Bytes, string(st))
	switch {
	case isFK(err):
		return fmt.Errorf("session: %w", ErrNotFound)
	case isDup(err):
		return fmt.Errorf("stream %d already recorded", s.Index)
	}
	return err
}

// UpdateStream sets the byte count and status of a stream.
func (d *DB) UpdateStream(sessionID string, index int, bytes int64, status Status) error {
	op := fmt.Sprintf("update stream %d of session %s", index, sessionID)
	id, err := canonUUID("session ID", sessionID)
	if err != nil {
		return d.err(op, err)
	}
	if !status.valid() {
		return d.err(op, fmt.Errorf("bad status %q", status))
	}
	r, err := d.db.Exec(`UPDATE streams SET bytes = ?, status = ? WHERE session_id = ? AND idx = ?`,
		bytes, string(status), id, index)
	if err != nil {
		return d.err(op, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return d.err(op, fmt.Errorf("stream: %w", ErrNotFound))
	}
	return nil
}

// AddMediaFile records (or, for the same session, stream and sequence
// number, updates) a media file of a stream, so a dumper can record a file
// when it opens it and its size when it closes it.
func (d *DB) AddMediaFile(m MediaFile) error {
	op := fmt.Sprintf("add media file %d of stream %d of session %s", m.Seq, m.Stream, m.SessionID)
	id, err := canonUUID("session ID", m.SessionID)
	if err != nil {
		return d.err(op, err)
	}
	if m.Seq < 0 {
		return d.err(op, fmt.Errorf("negative sequence number %d", m.Seq))
	}
	_, err = d.db.Exec(`INSERT INTO media_files(session_id, stream_idx, seq, path, bytes) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(session_id, stream_idx, seq) DO UPDATE SET path = excluded.path, bytes = excluded.bytes`,
		id, m.Stream, m.Seq, m.Path, m.Bytes)
	if isFK(err) {
		return d.err(op, fmt.Errorf("stream: %w", ErrNotFound))
	}
	if err != nil {
		return d.err(op, err)
	}
	return nil
}

// Checkpoint records the resume point of one stream, replacing the previous
// one (upsert; one atomic statement). The stream must have been added.
func (d *DB) Checkpoint(c Checkpoint) error {
	if err := checkpoint(d.db, c); err != nil {
		return d.err(fmt.Sprintf("checkpoint stream %d of session %s", c.Stream, c.SessionID), err)
	}
	return nil
}

func checkpoint(x execer, c Checkpoint) error {
	id, err := canonUUID("session ID", c.SessionID)
	if err != nil {
		return err
	}
	_, err = x.Exec(`INSERT INTO checkpoints(session_id, stream_idx, last_ino, offset, data, time_ns)
		VALUES(?, ?, ?, ?, ?, ?)
		ON CONFLICT(session_id, stream_idx) DO UPDATE SET last_ino = excluded.last_ino,
			offset = excluded.offset, data = excluded.data, time_ns = excluded.time_ns`,
		id, c.Stream, int64(c.LastIno), c.Offset, c.Data, nsOrNow(c.Time))
	if isFK(err) {
		return fmt.Errorf("stream: %w", ErrNotFound)
	}
	return err
}

// LatestCheckpoint returns the last checkpoint recorded for a stream, or
// nil, nil when there is none.
func (d *DB) LatestCheckpoint(sessionID string, stream int) (*Checkpoint, error) {
	op := fmt.Sprintf("read checkpoint of stream %d of session %s", stream, sessionID)
	id, err := canonUUID("session ID", sessionID)
	if err != nil {
		return nil, d.err(op, err)
	}
	c := Checkpoint{SessionID: id, Stream: stream}
	var ino, tns int64
	err = d.db.QueryRow(`SELECT last_ino, offset, data, time_ns FROM checkpoints WHERE session_id = ? AND stream_idx = ?`,
		id, stream).Scan(&ino, &c.Offset, &c.Data, &tns)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, d.err(op, err)
	}
	c.LastIno, c.Time = uint64(ino), time.Unix(0, tns)
	return &c, nil
}

// Checkpoints returns the latest checkpoint of every stream of a session
// that has one, by stream index, including Data.
func (d *DB) Checkpoints(sessionID string) ([]Checkpoint, error) {
	op := "read checkpoints of session " + sessionID
	id, err := canonUUID("session ID", sessionID)
	if err != nil {
		return nil, d.err(op, err)
	}
	rows, err := d.db.Query(`SELECT stream_idx, last_ino, offset, data, time_ns FROM checkpoints
		WHERE session_id = ? ORDER BY stream_idx`, id)
	if err != nil {
		return nil, d.err(op, err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		c := Checkpoint{SessionID: id}
		var ino, tns int64
		if err := rows.Scan(&c.Stream, &ino, &c.Offset, &c.Data, &tns); err != nil {
			return nil, d.err(op, err)
		}
		c.LastIno, c.Time = uint64(ino), time.Unix(0, tns)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, d.err(op, err)
	}
	return out, nil
}

// finish moves a session to status to, from one of the allowed states,
// setting counts and end time, and moves its in-progress streams along
// (streamTo) — all in one transaction.
func (d *DB) finish(op, sessionID string, allowed []Status, to, streamFrom, streamTo Status, c *Counts, end any) error {
	id, err := canonUUID("session ID", sessionID)
	if err != nil {
		return d.err(op, err)
	}
	err = d.inTx(context.Background(), func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRow(`SELECT status FROM sessions WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("session: %w", ErrNotFound)
		}
		if err != nil {
			return err
		}
		ok := false
		for _, a := range allowed {
			ok = ok || Status(cur) == a
		}
		if !ok {
			return fmt.Errorf("%w: session is %s", ErrState, cur)
		}
		if c != nil {
			_, err = tx.Exec(`UPDATE sessions SET status = ?, end_ns = ?, files = ?, dirs = ?, bytes = ? WHERE id = ?`,
				string(to), end, c.Files, c.Dirs, c.Bytes, id)
		} else {
			_, err = tx.Exec(`UPDATE sessions SET status = ?, end_ns = ? WHERE id = ?`, string(to), end, id)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE streams SET status = ? WHERE session_id = ? AND status = ?`,
			string(streamTo), id, string(streamFrom))
		return err
	})
	if err != nil {
		return d.err(op, err)
	}
	return nil
}

// CompleteSession marks a session in progress (or interrupted and since
// resumed) complete, with its final counts and the current time as end
// time; its streams still in progress become complete.
func (d *DB) CompleteSession(id string, c Counts) error {
	return d.finish("complete session "+id, id, []Status{StatusInProgress, StatusInterrupted},
		StatusComplete, StatusInProgress, StatusComplete, &c, time.Now().UnixNano())
}

// MarkInterrupted marks a session interrupted with the counts reached so
// far; its streams still in progress become interrupted. A complete
// session cannot be marked interrupted.
func (d *DB) MarkInterrupted(id string, c Counts) error {
	return d.finish("mark session "+id+" interrupted", id, []Status{StatusInProgress, StatusInterrupted},
		StatusInterrupted, StatusInProgress, StatusInterrupted, &c, time.Now().UnixNano())
}

// ResumeSession puts an interrupted session (or one left in progress by a
// killed dump) back in progress for `dump -R`: the end time is cleared and
// interrupted streams are in progress again. Checkpoints are kept.
func (d *DB) ResumeSession(id string) error {
	return d.finish("resume session "+id, id, []Status{StatusInProgress, StatusInterrupted},
		StatusInProgress, StatusInterrupted, StatusInProgress, nil, nil)
}
