package main

import (
	"fmt"
	"strings"

	"xfskit/internal/check"
	"xfskit/internal/replay"
	"xfskit/internal/xfs"
)

// checkRecovered checks the filesystem on img as the replay of its dirty
// log would leave it, replayed in memory: nothing is written. It returns
// a report (DirtyLog set, Replayed the replay) or, when the state cannot be
// verified offline, nil and the reason.
func checkRecovered(img string, opts check.Options) (*check.Report, string, error) {
	fs, err := xfs.Open(img)
	if err != nil {
		return nil, "", err
	}
	defer fs.Close()
	dev, res, err := replay.InMemory(fs.Dev)
	if err != nil {
		return nil, fmt.Sprintf("the log cannot be replayed offline: %v", err), nil
	}
	// Unfinished intents and skipped quota updates leave accounting that
	// only the kernel finishes after recovery: until then the metadata is
	// legitimately inconsistent. Files deleted while open stay on the
	// unlinked lists, which the check judges as lists; extents an
	// unfinished free still holds are accepted as in use where no reverse
	// mapping has pending updates of its own.
	opts.UnlinkedLists = res.UnlinkedInodes > 0
	left := res.AccountingLeft()
	if res.OnlyFrees && res.QuotaSkipped == 0 && !fs.SB.HasRmapbt() {
		opts.PendingFree, left = res.PendingFree, nil
	}
	if len(left) > 0 {
		return nil, "the log leaves work only the kernel finishes (" + strings.Join(left, ", ") + "), so the replayed state was not checked", nil
	}
	rfs, err := xfs.OpenDevice(dev)
	if err != nil {
		return nil, "", err
	}
	r, err := check.CheckFS(rfs, opts)
	if err != nil {
		return nil, "", err
	}
	r.DirtyLog, r.Replayed = true, res
	r.LogInfo = res.Log
	return r, "", nil
}
