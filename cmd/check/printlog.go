package main

import (
	"encoding/json"
	"errors"
	"os"

	"xfskit/internal/cli"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// printLog prints the log's transactions between tail and head (what
// xfs_logprint -t shows); nothing is checked or written.
func printLog(img string, asJSON bool) error {
	fs, err := xfs.Open(img)
	if err != nil {
		return exitForRead(err)
	}
	defer fs.Close()
	l, err := xlog.Open(fs)
	if err != nil {
		return exitForRead(err)
	}
	ls, err := l.List()
	if err != nil {
		return exitForRead(err)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ls)
	}
	ls.WriteText(os.Stdout)
	return nil
}

// exitForRead: a damaged structure is corruption (exit 1), anything else
// an I/O error (exit 4).
func exitForRead(err error) error {
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) {
		return &cli.ExitError{Code: cli.ExitCorrupt, Err: err}
	}
	return &cli.ExitError{Code: cli.ExitIOError, Err: err}
}
