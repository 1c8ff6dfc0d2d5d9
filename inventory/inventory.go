package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrNotFound reports that a session, stream or filesystem named by the
	// caller is not in the inventory.
	ErrNotFound = errors.New("not found")
	// ErrSchemaTooNew reports a database written by a newer xfskit whose
	// schema this version does not understand.
	ErrSchemaTooNew = errors.New("database schema is newer than this xfskit supports")
	// ErrState reports an operation that does not fit the session's current
	// status (e.g. completing a session that is already complete).
	ErrState = errors.New("invalid session state")
)

// Error is returned by every DB method that fails: it names the database
// file, the operation and the cause.
type Error struct {
	Path string // database file
	Op   string // what was being done, e.g. "complete session 3f2a…"
	Err  error  // cause
}

func (e *Error) Error() string {
	return "inventory " + e.Path + ": " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// DB is an open inventory database. It is safe for concurrent use by several
// goroutines and by several processes (SQLite WAL mode with a busy timeout).
type DB struct {
	db   *sql.DB
	path string
}

// busyTimeoutMS is how long a writer waits for another process's write
// transaction before giving up.
const busyTimeoutMS = 15000

// DefaultPath returns where the inventory lives when the user names none:
// /var/lib/xfskit/inventory.db for root, otherwise
// $XDG_DATA_HOME/xfskit/inventory.db, falling back to
// ~/.local/share/xfskit/inventory.db.
func DefaultPath() string {
	return defaultPath(os.Geteuid(), os.Getenv, homeDir)
}

func homeDir() (string, error) {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return h, nil
	}
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	if u.HomeDir == "" {
		return "", errors.New("no home directory")
	}
	return u.HomeDir, nil
}

func defaultPath(euid int, getenv func(string) string, home func() (string, error)) string {
	const root = "/var/lib/xfskit/inventory.db"
	if euid == 0 {
		return root
	}
	// The XDG base directory spec says relative values are to be ignored.
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "xfskit", "inventory.db")
	}
	if h, err := home(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "xfskit", "inventory.db")
	}
	// No home at all: point at the system location; Open will then say
	// clearly why it cannot be used.
	return root
}

// dsn builds the SQLite URI for path with the settings that keep the
// database consistent when a process is killed at any moment: WAL journal,
// synchronous=FULL (each commit is durable), foreign keys on (cascading
// deletes), a busy timeout for concurrent dump processes, and IMMEDIATE
// write transactions so two writers never deadlock on a lock upgrade.
func dsn(abs string) string {
	u := url.URL{Scheme: "file", Path: abs}
	return u.String() + fmt.Sprintf("?_busy_timeout=%d&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate", busyTimeoutMS)
}

// Open opens the inventory at path, creating the file, its parent
// directories and the schema when missing, and upgrading an older schema in
// one transaction. A database written by a newer xfskit is refused with an
// error wrapping ErrSchemaTooNew.
func Open(path string) (*DB, error) {
	return openAt(path, SchemaVersion)
}

// openAt opens path and migrates it to version target (tests build old
// databases with a lower target).
func openAt(path string, target int) (*DB, error) {
	if path == "" {
		return nil, &Error{Path: `""`, Op: "open", Err: errors.New("empty database path")}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{Path: path, Op: "open", Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, &Error{Path: abs, Op: "create directory", Err: err}
	}
	// Create the file ourselves so it is private (0600): it lists paths.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &Error{Path: abs, Op: "open", Err: err}
	}
	f.Close()
	sdb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, &Error{Path: abs, Op: "open", Err: err}
	}
	d := &DB{db: sdb, path: abs}
	if err := d.migrate(context.Background(), target); err != nil {
		sdb.Close()
		return nil, err
	}
	return d, nil
}

// Path returns the absolute path of the database file.
func (d *DB) Path() string { return d.path }

// Close closes the database. Sessions still in progress stay so; a dump
// that is interrupted should call MarkInterrupted first.
func (d *DB) Close() error {
	if err := d.db.Close(); err != nil {
		return d.err("close", err)
	}
	return nil
}

func (d *DB) err(op string, err error) error {
	return &Error{Path: d.path, Op: op, Err: err}
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isFK(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY }

func isDup(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// inTx runs fn in one write transaction, committing when fn returns nil.
func (d *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
