package inventory

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// schemaV1 is the schema as xfskit shipped it at version 1, frozen here so
// the test notices if anyone edits migration 1 instead of appending a step.
var schemaV1 = []string{
	`CREATE TABLE filesystems (
		uuid TEXT PRIMARY KEY, label TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
		first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL) STRICT`,
	`CREATE TABLE sessions (
		seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, fs_uuid TEXT NOT NULL REFERENCES filesystems(uuid),
		level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 9), base_id TEXT, subtrees TEXT NOT NULL DEFAULT '[]',
		label TEXT NOT NULL DEFAULT '', start_ns INTEGER NOT NULL, end_ns INTEGER,
		status TEXT NOT NULL CHECK (status IN ('in-progress', 'complete', 'interrupted')),
		files INTEGER NOT NULL DEFAULT 0, dirs INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0) STRICT`,
	`CREATE TABLE streams (
		session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, idx INTEGER NOT NULL CHECK (idx >= 0),
		count INTEGER NOT NULL CHECK (count > idx), dest TEXT NOT NULL DEFAULT '', media_label TEXT NOT NULL DEFAULT '',
		bytes INTEGER NOT NULL DEFAULT 0,
		status TEXT NOT NULL CHECK (status IN ('in-progress', 'complete', 'interrupted')),
		PRIMARY KEY (session_id, idx)) STRICT`,
	`CREATE TABLE media_files (
		session_id TEXT NOT NULL, stream_idx INTEGER NOT NULL, seq INTEGER NOT NULL CHECK (seq >= 0),
		path TEXT NOT NULL DEFAULT '', bytes INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (session_id, stream_idx, seq),
		FOREIGN KEY (session_id, stream_idx) REFERENCES streams(session_id, idx) ON DELETE CASCADE) STRICT`,
	`PRAGMA user_version = 1`,
}

const v1Session = "5d1f0c8e-3a2b-4c6d-9e8f-0a1b2c3d4e5f"

// makeV1 writes a version-1 database with one complete session at p.
func makeV1(t *testing.T, p string) {
	t.Helper()
	raw, err := sql.Open("sqlite", dsn(p))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	stmts := append([]string{}, schemaV1...)
	stmts = append(stmts,
		`INSERT INTO filesystems VALUES ('`+fsA+`', 'old', '/dev/old', 1, 2)`,
		`INSERT INTO sessions(id, fs_uuid, level, subtrees, label, start_ns, end_ns, status, files, dirs, bytes)
			VALUES ('`+v1Session+`', '`+fsA+`', 0, '[]', 'v1 dump', 1700000000123456789, 1700000001000000000, 'complete', 5, 2, 999)`,
		`INSERT INTO streams VALUES ('`+v1Session+`', 0, 1, '/b/old', 'tape', 999, 'complete')`,
		`INSERT INTO media_files VALUES ('`+v1Session+`', 0, 0, '/b/old', 999)`,
	)
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// tableInfo describes every table's columns, for comparing schemas.
func tableInfo(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT m.name, p.name, p.type, p."notnull", coalesce(p.dflt_value, ''), p.pk
		FROM sqlite_schema m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var tbl, col, typ, dflt string
		var nn, pk int
		if err := rows.Scan(&tbl, &col, &typ, &nn, &dflt, &pk); err != nil {
			t.Fatal(err)
		}
		out[tbl] = append(out[tbl], fmt.Sprint(col, " ", typ, " ", nn, " ", dflt, " ", pk))
	}
	var idx []string
	rows2, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows2.Close()
	for rows2.Next() {
		var n string
		rows2.Scan(&n)
		idx = append(idx, n)
	}
	out["(indexes)"] = idx
	return out
}

func TestMigrateFromV1(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v1.db")
	makeV1(t, p)

	// Migration step 1 must still produce exactly the shipped v1 schema.
	q := filepath.Join(dir, "fresh1.db")
	d1, err := openAt(q, 1)
	if err != nil {
		t.Fatal(err)
	}
	d1.Close()
	rawP, _ := sql.Open("sqlite", dsn(p))
	rawQ, _ := sql.Open("sqlite", dsn(q))
	if a, b := tableInfo(t, rawP), tableInfo(t, rawQ); !reflect.DeepEqual(a, b) {
		t.Errorf("migration 1 differs from the shipped v1 schema:\nshipped %v\nnow     %v", a, b)
	}
	rawP.Close()
	rawQ.Close()

	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, err := d.schemaVersion(); err != nil || v != SchemaVersion {
		t.Fatalf("after upgrade: version %d %v, want %d", v, err, SchemaVersion)
	}
	s, err := d.Session(v1Session)
	if err != nil {
		t.Fatal(err)
	}
	if s.Label != "v1 dump" || s.Start.UnixNano() != 1700000000123456789 || s.Compression != "" ||
		s.Counts != (Counts{5, 2, 999}) || len(s.Streams) != 1 || len(s.Streams[0].Media) != 1 || s.FSLabel != "old" {
		t.Errorf("v1 session after upgrade: %+v", s)
	}
	// New features work on the upgraded database.
	mustNil(t, d.Checkpoint(Checkpoint{SessionID: v1Session, Stream: 0, LastIno: 42}))
	if b, err := d.BaseFor(fsA, 1, nil); err != nil || b == nil || b.ID != v1Session {
		t.Errorf("BaseFor on upgraded db: %v %v", b, err)
	}
	id := NewSessionID()
	mustNil(t, d.BeginSession(SessionInfo{ID: id, FSUUID: fsA, Level: 1, Compression: "zstd"}))
	if s, _ := d.Session(id); s.Compression != "zstd" {
		t.Errorf("compression not stored on upgraded db")
	}

	// The upgraded schema equals a freshly created one.
	f := newDB(t)
	if a, b := tableInfo(t, d.db), tableInfo(t, f.db); !reflect.DeepEqual(a, b) {
		t.Errorf("upgraded schema differs from fresh:\nupgraded %v\nfresh    %v", a, b)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "future.db")
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion + 1
	if _, err := d.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, err = Open(p)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of future schema: %v", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{p, fmt.Sprintf("version %d", future), "newer"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	// The refusal did not touch the database.
	if _, err := openAt(p, 0); err == nil {
		t.Fatal("openAt accepted a future schema")
	}
	raw, _ := sql.Open("sqlite", dsn(p))
	defer raw.Close()
	var v int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != future {
		t.Errorf("version after refusal: %d %v", v, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("Open of junk file: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open of a directory: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open of empty path succeeded")
	}
}
