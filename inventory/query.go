package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Filter selects sessions. Zero fields match everything; set fields must
// all match.
type Filter struct {
	FSUUID string    // filesystem UUID
	Level  *int      // dump level (use AtLevel); nil = any
	Since  time.Time // sessions started at or after Since
	Until  time.Time // sessions started before Until
	Status Status    // "" = any
}

// AtLevel returns a pointer to n, for Filter.Level.
func AtLevel(n int) *int { return &n }

func (f Filter) empty() bool {
	return f.FSUUID == "" && f.Level == nil && f.Since.IsZero() && f.Until.IsZero() && f.Status == ""
}

// where renders f as an SQL condition on sessions aliased s.
func (f Filter) where() (string, []any, error) {
	conds := []string{"1"}
	var args []any
	if f.FSUUID != "" {
		id, err := canonUUID("filesystem UUID", f.FSUUID)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "s.fs_uuid = ?")
		args = append(args, id)
	}
	if f.Level != nil {
		conds = append(conds, "s.level = ?")
		args = append(args, *f.Level)
	}
	if !f.Since.IsZero() {
		conds = append(conds, "s.start_ns >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "s.start_ns < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.Status != "" {
		if !f.Status.valid() {
			return "", nil, fmt.Errorf("bad status %q", f.Status)
		}
		conds = append(conds, "s.status = ?")
		args = append(args, string(f.Status))
	}
	return strings.Join(conds, " AND "), args, nil
}

// Session returns one session with its streams, media files and
// checkpoints; the error wraps ErrNotFound when there is no such session.
func (d *DB) Session(id string) (*Session, error) {
	op := "read session " + id
	cid, err := canonUUID("session ID", id)
	if err != nil {
		return nil, d.err(op, err)
	}
	ss, err := d.query("s.id = ?", []any{cid}, "", 0)
	if err != nil {
		return nil, d.err(op, err)
	}
	if len(ss) == 0 {
		return nil, d.err(op, fmt.Errorf("session: %w", ErrNotFound))
	}
	return &ss[0], nil
}

// Sessions returns the sessions matching f, oldest first, with their
// streams, media files and checkpoints.
func (d *DB) Sessions(f Filter) ([]Session, error) {
	w, args, err := f.where()
	if err != nil {
		return nil, d.err("list sessions", err)
	}
	ss, err := d.query(w, args, "", 0)
	if err != nil {
		return nil, d.err("list sessions", err)
	}
	return ss, nil
}

// BaseFor returns the base of a level-`level` dump of filesystem fsUUID
// restricted to subtrees: the most recent complete session of that
// filesystem with the same subtree selection (compared in canonical form,
// see CanonicalSubtrees) and a lower level. It returns nil, nil when there
// is none (always for level 0).
func (d *DB) BaseFor(fsUUID string, level int, subtrees []string) (*Session, error) {
	op := fmt.Sprintf("find base for level %d dump of %s", level, fsUUID)
	fsid, err := canonUUID("filesystem UUID", fsUUID)
	if err != nil {
		return nil, d.err(op, err)
	}
	if level < 0 || level > 9 {
		return nil, d.err(op, fmt.Errorf("level %d out of range 0-9", level))
	}
	ss, err := d.query("s.fs_uuid = ? AND s.subtrees = ? AND s.status = ? AND s.level < ?",
		[]any{fsid, subtreesKey(subtrees), string(StatusComplete), level}, "DESC", 1)
	if err != nil {
		return nil, d.err(op, err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return &ss[0], nil
}

// LatestInterrupted returns the most recent session of filesystem fsUUID
// that did not complete — interrupted, or left in progress by a dump that
// was killed — for `dump -R`, or nil, nil when there is none. A session in
// progress may also belong to a dump still running; callers resuming it
// must make sure it is not.
func (d *DB) LatestInterrupted(fsUUID string) (*Session, error) {
	op := "find interrupted session of " + fsUUID
	fsid, err := canonUUID("filesystem UUID", fsUUID)
	if err != nil {
		return nil, d.err(op, err)
	}
	ss, err := d.query("s.fs_uuid = ? AND s.status IN (?, ?)",
		[]any{fsid, string(StatusInterrupted), string(StatusInProgress)}, "DESC", 1)
	if err != nil {
		return nil, d.err(op, err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return &ss[0], nil
}

// Chain returns session id and its bases, following BaseID, base first
// (level 0 … id): the order a cumulative restore (-r) applies them in. The
// error wraps ErrNotFound if a base has been pruned.
func (d *DB) Chain(id string) ([]Session, error) {
	var chain []Session
	seen := map[string]bool{}
	for cur := id; cur != ""; {
		s, err := d.Session(cur)
		if err != nil {
			if len(chain) > 0 {
				return nil, d.err("chain of session "+id, fmt.Errorf("base session %s of %s: %w", cur, chain[len(chain)-1].ID, ErrNotFound))
			}
			return nil, err
		}
		if seen[s.ID] {
			return nil, d.err("chain of session "+id, fmt.Errorf("base sessions form a cycle at %s", s.ID))
		}
		seen[s.ID] = true
		chain = append(chain, *s)
		cur = s.BaseID
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// Prune deletes the sessions matching f together with their streams, media
// files and checkpoints, in one transaction, and returns the IDs of the
// sessions it deleted, oldest first. Pruning "older than t" is
// Prune(Filter{Until: t}). An empty filter is refused, and sessions still
// in progress are kept unless f.Status is StatusInProgress. Filesystem
// records are kept. Sessions whose base is pruned keep its ID in BaseID.
func (d *DB) Prune(f Filter) ([]string, error) {
	w, args, err := d.pruneWhere(f)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = d.inTx(context.Background(), func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT s.id FROM sessions s WHERE `+w+` ORDER BY s.start_ns, s.seq`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s WHERE `+w+`)`, args...)
		return err
	})
	if err != nil {
		return nil, d.err("prune", err)
	}
	return ids, nil
}

// PruneCandidates returns the sessions Prune(f) would delete, oldest
// first, without deleting them.
func (d *DB) PruneCandidates(f Filter) ([]Session, error) {
	w, args, err := d.pruneWhere(f)
	if err != nil {
		return nil, err
	}
	ss, err := d.query(w, args, "ASC", 0)
	if err != nil {
		return nil, d.err("prune", err)
	}
	return ss, nil
}

// pruneWhere is f's condition for pruning: an empty filter is refused, and
// sessions in progress are excluded unless f asks for them by status.
func (d *DB) pruneWhere(f Filter) (string, []any, error) {
	if f.empty() {
		return "", nil, d.err("prune", errors.New("refusing to prune with an empty filter"))
	}
	w, args, err := f.where()
	if err != nil {
		return "", nil, d.err("prune", err)
	}
	if f.Status == "" {
		w += " AND s.status != ?"
		args = append(args, string(StatusInProgress))
	}
	return w, args, nil
}

// query loads the sessions matching where (over sessions s), ordered by
// start time (ascending, or descending when order is "DESC"), at most limit
// (0 = all), with their streams, media files and checkpoints, from one
// consistent snapshot.
func (d *DB) query(where string, args []any, order string, limit int) ([]Session, error) {
	ctx := context.Background()
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	if order != "DESC" {
		order = "ASC"
	}
	// The selected sessions, as a subquery the child tables join against.
	sel := `SELECT s.seq FROM sessions s WHERE ` + where + ` ORDER BY s.start_ns ` + order + `, s.seq ` + order
	if limit > 0 {
		sel += fmt.Sprintf(" LIMIT %d", limit)
	}

	rows, err := tx.QueryContext(ctx, `SELECT s.id, s.fs_uuid, f.label, f.source, s.level, s.base_id, s.subtrees,
			s.label, s.start_ns, s.end_ns, s.status, s.files, s.dirs, s.bytes, s.compression
		FROM sessions s JOIN filesystems f ON f.uuid = s.fs_uuid
		WHERE s.seq IN (`+sel+`) ORDER BY s.start_ns `+order+`, s.seq `+order, args...)
	if err != nil {
		return nil, err
	}
	var out []Session
	byID := map[string]int{}
	for rows.Next() {
		var (
			s       Session
			base    sql.NullString
			subs    string
			st, end sql.NullInt64
			status  string
		)
		if err := rows.Scan(&s.ID, &s.FSUUID, &s.FSLabel, &s.FSSource, &s.Level, &base, &subs,
			&s.Label, &st, &end, &status, &s.Counts.Files, &s.Counts.Dirs, &s.Counts.Bytes, &s.Compression); err != nil {
			rows.Close()
			return nil, err
		}
		s.BaseID = base.String
		var err error
		if s.Subtrees, err = parseSubtrees(subs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("session %s: bad subtree list %q: %w", s.ID, subs, err)
		}
		if s.Subtrees == nil {
			s.Subtrees = []string{}
		}
		s.Start = time.Unix(0, st.Int64)
		if end.Valid {
			s.End = time.Unix(0, end.Int64)
		}
		s.Status = Status(status)
		s.Streams = []Stream{}
		byID[s.ID] = len(out)
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	// The child queries repeat the selection as a subquery, with the same args.
	in := `(SELECT s.id FROM sessions s WHERE s.seq IN (` + sel + `))`

	rows, err = tx.QueryContext(ctx, `SELECT session_id, idx, count, dest, media_label, bytes, status
		FROM streams WHERE session_id IN `+in+` ORDER BY session_id, idx`, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t Stream
		var status string
		if err := rows.Scan(&t.SessionID, &t.Index, &t.Count, &t.Dest, &t.MediaLabel, &t.Bytes, &status); err != nil {
			rows.Close()
			return nil, err
		}
		t.Status = Status(status)
		t.Media = []MediaFile{}
		s := &out[byID[t.SessionID]]
		s.Streams = append(s.Streams, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	stream := func(sid string, idx int) *Stream {
		s := &out[byID[sid]]
		for i := range s.Streams {
			if s.Streams[i].Index == idx {
				return &s.Streams[i]
			}
		}
		return nil
	}

	rows, err = tx.QueryContext(ctx, `SELECT session_id, stream_idx, seq, path, bytes
		FROM media_files WHERE session_id IN `+in+` ORDER BY session_id, stream_idx, seq`, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var m MediaFile
		if err := rows.Scan(&m.SessionID, &m.Stream, &m.Seq, &m.Path, &m.Bytes); err != nil {
			rows.Close()
			return nil, err
		}
		if t := stream(m.SessionID, m.Stream); t != nil {
			t.Media = append(t.Media, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = tx.QueryContext(ctx, `SELECT session_id, stream_idx, last_ino, offset, time_ns
		FROM checkpoints WHERE session_id IN `+in, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c Checkpoint
		var ino, tns int64
		if err := rows.Scan(&c.SessionID, &c.Stream, &ino, &c.Offset, &tns); err != nil {
			rows.Close()
			return nil, err
		}
		c.LastIno, c.Time = uint64(ino), time.Unix(0, tns)
		if t := stream(c.SessionID, c.Stream); t != nil {
			t.Checkpoint = &c
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
