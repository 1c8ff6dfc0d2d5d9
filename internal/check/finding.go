// Package check verifies every piece of XFS metadata in an image, offline and
// read-only, the way `xfs_repair -n` does, and reports findings.
package check

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"xfskit/ondisk"
)

// Finding is one problem found in the image.
type Finding struct {
	Structure string `json:"structure"`       // e.g. "AGF", "inode", "bnobt block", "directory"
	AG        int64  `json:"ag"`              // -1 when not tied to one AG
	Inode     uint64 `json:"inode,omitempty"` // 0 when not about an inode
	Block     int64  `json:"block"`           // filesystem block (or -1)
	Message   string `json:"message"`
}

func (f Finding) String() string {
	loc := ""
	if f.AG >= 0 {
		loc = fmt.Sprintf("AG %d: ", f.AG)
	}
	if f.Inode != 0 {
		loc += fmt.Sprintf("inode %d: ", f.Inode)
	}
	if f.Block >= 0 {
		loc += fmt.Sprintf("block %d: ", f.Block)
	}
	return loc + f.Structure + ": " + f.Message
}

// Report collects findings; safe for concurrent use. It keeps at most
// maxKept findings in memory (a hostile image can produce millions) but
// counts them all.
type Report struct {
	mu       sync.Mutex
	findings []Finding
	total    int
	maxKept  int
	DirtyLog bool
	LogInfo  string
	Stats    Stats
	// Replayed, when set, describes the in-memory replay of a dirty log
	// whose result this report checked (the image itself was not written);
	// NotReplayed says why a dirty log's replayed state was not checked.
	Replayed    any
	NotReplayed string
}

// Stats summarise what was checked.
type Stats struct {
	AGs         int    `json:"ags"`
	Inodes      uint64 `json:"inodes"`
	Directories uint64 `json:"directories"`
	Files       uint64 `json:"files"`
	DataBlocks  uint64 `json:"data_blocks"`
	FreeBlocks  uint64 `json:"free_blocks"`
}

func newReport() *Report { return &Report{maxKept: 10000} }

func (r *Report) add(f Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.findings) < r.maxKept {
		r.findings = append(r.findings, f)
	}
}

// errorf records a finding about a structure in an AG.
func (r *Report) agf(ag uint32, structure string, block int64, format string, args ...any) {
	r.add(Finding{Structure: structure, AG: int64(ag), Block: block, Message: fmt.Sprintf(format, args...)})
}

// inof records a finding about an inode.
func (r *Report) inof(ino uint64, structure string, format string, args ...any) {
	r.add(Finding{Structure: structure, AG: -1, Inode: ino, Block: -1, Message: fmt.Sprintf(format, args...)})
}

// fsf records a finding about the whole filesystem.
func (r *Report) fsf(structure string, format string, args ...any) {
	r.add(Finding{Structure: structure, AG: -1, Block: -1, Message: fmt.Sprintf(format, args...)})
}

// fromErr records a verifier error, keeping its structure name when it is a
// *ondisk.CorruptError.
func (r *Report) fromErr(ag int64, ino uint64, block int64, err error) {
	f := Finding{AG: ag, Inode: ino, Block: block, Structure: "metadata", Message: err.Error()}
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) {
		f.Structure = ce.Structure
	}
	r.add(f)
}

// Findings returns the findings kept.
func (r *Report) Findings() []Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Finding(nil), r.findings...)
}

// Total counts every finding, kept or not.
func (r *Report) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Clean reports no corruption found.
func (r *Report) Clean() bool { return r.Total() == 0 }

// WriteText prints the findings one per line, then a summary.
func (r *Report) WriteText(w io.Writer) {
	for _, f := range r.Findings() {
		fmt.Fprintln(w, f.String())
	}
	if n := r.Total() - len(r.Findings()); n > 0 {
		fmt.Fprintf(w, "... and %d more findings\n", n)
	}
}

// WriteJSON prints {"findings": [...], "total": n, "dirty_log": b, "stats": {...}}.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		Findings    []Finding `json:"findings"`
		Total       int       `json:"total"`
		DirtyLog    bool      `json:"dirty_log"`
		Log         string    `json:"log,omitempty"`
		Stats       Stats     `json:"stats"`
		Replayed    any       `json:"replayed_in_memory,omitempty"`
		NotReplayed string    `json:"replayed_state_not_checked,omitempty"`
	}{r.Findings(), r.Total(), r.DirtyLog, r.LogInfo, r.Stats, r.Replayed, r.NotReplayed}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
