// Package inventory is the dump history database of xfskit's dump and
// restore (the counterpart of xfsdump's inventory and xfsinvutil), kept in
// an embedded SQLite file (modernc.org/sqlite, no cgo) opened in WAL mode
// with synchronous=FULL, foreign keys on and a busy timeout, so that a dump
// killed at any instant leaves a consistent database. Schema (version in
// PRAGMA user_version, upgraded by the ordered steps in schema.go, each in
// one transaction): filesystems(uuid PK, label, source, first/last seen);
// sessions(seq PK, id UUID unique, fs_uuid → filesystems, level 0-9,
// base_id (nullable, not a foreign key so pruning a base keeps the
// reference), subtrees as a canonical JSON array ("[]" = whole fs), label,
// start_ns/end_ns as int64 Unix nanoseconds, status
// in-progress|complete|interrupted, files, dirs, bytes, compression);
// streams(session_id → sessions ON DELETE CASCADE, idx, count, dest,
// media_label, bytes, status; PK session_id+idx); media_files(session_id,
// stream_idx → streams CASCADE, seq, path, bytes); checkpoints(session_id,
// stream_idx → streams CASCADE, last_ino, offset, data blob, time_ns; one
// row per stream, upserted). Deleting a session therefore removes its
// streams, media files and checkpoints in the same statement.
//
// Typical use by dump:
//
//	db, err := inventory.Open(inventory.DefaultPath())
//	base, err := db.BaseFor(fsUUID, level, subtrees) // nil for a full dump
//	id := inventory.NewSessionID()
//	err = db.BeginSession(inventory.SessionInfo{ID: id, FSUUID: fsUUID, Level: level, ...})
//	err = db.AddStream(inventory.Stream{SessionID: id, Index: 0, Count: 1, Dest: path})
//	err = db.Checkpoint(inventory.Checkpoint{SessionID: id, Stream: 0, LastIno: ino, Offset: off})
//	err = db.CompleteSession(id, counts) // or MarkInterrupted(id, counts)
//
// All times are stored with nanosecond precision. Every error is an *Error
// naming the database path and the operation.
package inventory
