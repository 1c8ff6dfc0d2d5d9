package dump

import (
	"fmt"
	"io"
	"time"

	"xfskit/internal/xfs"
	"xfskit/inventory"
)

// ListOptions select what List prints (the -I inventory listing).
type ListOptions struct {
	Inventory string // database path ("" is inventory.DefaultPath())
	// Image, if set, restricts the listing to its filesystem (by UUID).
	Image  string
	FSUUID string
	Level  *int
	Since  time.Time
	Until  time.Time
	Status string // "complete", "interrupted", "in-progress" or ""
	JSON   bool
}

// List prints the dump sessions recorded in the inventory that match o,
// oldest first, as xfsdump -I does (or as JSON).
func List(w io.Writer, o ListOptions) error {
	f := inventory.Filter{FSUUID: o.FSUUID, Level: o.Level, Since: o.Since, Until: o.Until, Status: inventory.Status(o.Status)}
	switch f.Status {
	case "", inventory.StatusComplete, inventory.StatusInterrupted, inventory.StatusInProgress:
	default:
		return usagef("unknown status %q (want complete, interrupted or in-progress)", o.Status)
	}
	if o.Image != "" {
		fs, err := xfs.Open(o.Image)
		if err != nil {
			return err
		}
		id := fs.SB.UUID.String()
		fs.Close()
		if f.FSUUID != "" && f.FSUUID != id {
			return usagef("image %s has UUID %s, not %s", o.Image, id, f.FSUUID)
		}
		f.FSUUID = id
	}
	path := o.Inventory
	if path == "" {
		path = inventory.DefaultPath()
	}
	db, err := inventory.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	ss, err := db.Sessions(f)
	if err != nil {
		return err
	}
	if err := inventory.Report(w, ss, o.JSON); err != nil {
		return fmt.Errorf("writing the inventory listing: %w", err)
	}
	return nil
}
