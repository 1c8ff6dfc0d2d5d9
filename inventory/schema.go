package inventory

import (
	"context"
	"database/sql"
	"fmt"
)

// migration is one schema step. Steps are applied in order, each database
// records how many it has seen in PRAGMA user_version, and a shipped step is
// never edited: schema changes are new steps appended at the end.
type migration struct {
	name  string
	stmts []string
}

// migrations[i] takes a database from version i to version i+1.
var migrations = []migration{
	{
		name: "initial schema",
		stmts: []string{
			`CREATE TABLE filesystems (
				uuid          TEXT    PRIMARY KEY,
				label         TEXT    NOT NULL DEFAULT '',
				source        TEXT    NOT NULL DEFAULT '',
				first_seen_ns INTEGER NOT NULL,
				last_seen_ns  INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE sessions (
				seq      INTEGER PRIMARY KEY,
				id       TEXT    NOT NULL UNIQUE,
				fs_uuid  TEXT    NOT NULL REFERENCES filesystems(uuid),
				level    INTEGER NOT NULL CHECK (level BETWEEN 0 AND 9),
				base_id  TEXT,
				subtrees TEXT    NOT NULL DEFAULT '[]',
				label    TEXT    NOT NULL DEFAULT '',
				start_ns INTEGER NOT NULL,
				end_ns   INTEGER,
				status   TEXT    NOT NULL CHECK (status IN ('in-progress', 'complete', 'interrupted')),
				files    INTEGER NOT NULL DEFAULT 0,
				dirs     INTEGER NOT NULL DEFAULT 0,
				bytes    INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			`CREATE TABLE streams (
				session_id  TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
				idx         INTEGER NOT NULL CHECK (idx >= 0),
				count       INTEGER NOT NULL CHECK (count > idx),
				dest        TEXT    NOT NULL DEFAULT '',
				media_label TEXT    NOT NULL DEFAULT '',
				bytes       INTEGER NOT NULL DEFAULT 0,
				status      TEXT    NOT NULL CHECK (status IN ('in-progress', 'complete', 'interrupted')),
				PRIMARY KEY (session_id, idx)
			) STRICT`,
			`CREATE TABLE media_files (
				session_id TEXT    NOT NULL,
				stream_idx INTEGER NOT NULL,
				seq        INTEGER NOT NULL CHECK (seq >= 0),
				path       TEXT    NOT NULL DEFAULT '',
				bytes      INTEGER NOT NULL DEFAULT 0,
				PRIMARY KEY (session_id, stream_idx, seq),
				FOREIGN KEY (session_id, stream_idx) REFERENCES streams(session_id, idx) ON DELETE CASCADE
			) STRICT`,
		},
	},
	{
		name: "compression, resume checkpoints, query indexes",
		stmts: []string{
			`ALTER TABLE sessions ADD COLUMN compression TEXT NOT NULL DEFAULT ''`,
			`CREATE TABLE checkpoints (
				session_id TEXT    NOT NULL,
				stream_idx INTEGER NOT NULL,
				last_ino   INTEGER NOT NULL,
				offset     INTEGER NOT NULL,
				data       BLOB,
				time_ns    INTEGER NOT NULL,
				PRIMARY KEY (session_id, stream_idx),
				FOREIGN KEY (session_id, stream_idx) REFERENCES streams(session_id, idx) ON DELETE CASCADE
			) STRICT`,
			`CREATE INDEX sessions_fs_start ON sessions(fs_uuid, start_ns)`,
			`CREATE INDEX sessions_start ON sessions(start_ns)`,
		},
	},
}

// SchemaVersion is the schema version this package writes: the number of
// migration steps (a test keeps the two in step).
const SchemaVersion = 2

// migrate brings the database to version target inside one IMMEDIATE
// transaction, so concurrent openers serialise and a crash mid-way leaves
// the old version intact.
func (d *DB) migrate(ctx context.Context, target int) error {
	if target < 0 || target > len(migrations) {
		return d.err("open", fmt.Errorf("no schema version %d", target))
	}
	var from int
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if from > SchemaVersion {
			return fmt.Errorf("%w (file has version %d, this xfskit reads up to %d); use a newer xfskit", ErrSchemaTooNew, from, SchemaVersion)
		}
		if from < 0 {
			return fmt.Errorf("bad schema version %d", from)
		}
		for v := from; v < target; v++ {
			for _, s := range migrations[v].stmts {
				if _, err := tx.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("migrate schema v%d to v%d (%s): %w", v, v+1, migrations[v].name, err)
				}
			}
		}
		if target > from {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", target)); err != nil {
				return fmt.Errorf("set schema version %d: %w", target, err)
			}
		}
		return nil
	})
	if err != nil {
		return d.err("open", err)
	}
	return nil
}

// schemaVersion reads PRAGMA user_version.
func (d *DB) schemaVersion() (int, error) {
	var v int
	err := d.db.QueryRow("PRAGMA user_version").Scan(&v)
	return v, err
}
