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
	db, f, err := o.open()
	if err != nil {
		return err
	}
	defer db.Close()
	ss, err := db.Sessions(f)
	if err != nil {
		return err
	}
	return report(w, ss, o.JSON)
}

// Prune deletes the sessions that match o from the inventory (what
// xfsinvutil does for xfsdump) and prints them; with dryRun it only prints
// them. It needs at least one filter, and keeps sessions still in progress
// unless o.Status asks for them. Media files are not touched.
func Prune(w io.Writer, o ListOptions, dryRun bool) error {
	db, f, err := o.open()
	if err != nil {
		return err
	}
	defer db.Close()
	if f == (inventory.Filter{}) {
		return usagef("--prune needs a filter (IMAGE, --fs-uuid, -l, --since, --until or --status)")
	}
	ss, err := db.PruneCandidates(f)
	if err != nil {
		return err
	}
	if !dryRun {
		ids, err := db.Prune(f)
		if err != nil {
			return err
		}
		// Report exactly what went (a dump may have changed a session's
		// status in between).
		gone := map[string]bool{}
		for _, id := range ids {
			gone[id] = true
		}
		kept := ss[:0]
		for _, s := range ss {
			if gone[s.ID] {
				kept = append(kept, s)
			}
		}
		ss = kept
	}
	return report(w, ss, o.JSON)
}

func report(w io.Writer, ss []inventory.Session, asJSON bool) error {
	if err := inventory.Report(w, ss, asJSON); err != nil {
		return fmt.Errorf("writing the inventory listing: %w", err)
	}
	return nil
}

// open checks o's filters and opens the inventory.
func (o ListOptions) open() (*inventory.DB, inventory.Filter, error) {
	f := inventory.Filter{FSUUID: o.FSUUID, Level: o.Level, Since: o.Since, Until: o.Until, Status: inventory.Status(o.Status)}
	switch f.Status {
	case "", inventory.StatusComplete, inventory.StatusInterrupted, inventory.StatusInProgress:
	default:
		return nil, f, usagef("unknown status %q (want complete, interrupted or in-progress)", o.Status)
	}
	if o.Image != "" {
		fs, err := xfs.Open(o.Image)
		if err != nil {
			return nil, f, err
		}
		id := fs.SB.UUID.String()
		fs.Close()
		if f.FSUUID != "" && f.FSUUID != id {
			return nil, f, usagef("image %s has UUID %s, not %s", o.Image, id, f.FSUUID)
		}
		f.FSUUID = id
	}
	db, err := openInventory(o.Inventory)
	return db, f, err
}

// openInventory opens the inventory at path, or at the default place; a
// default that cannot be made says how to choose another.
func openInventory(path string) (*inventory.DB, error) {
	if path != "" {
		return inventory.Open(path)
	}
	db, err := inventory.Open(inventory.DefaultPath())
	if err != nil {
		return nil, fmt.Errorf("%w (the default inventory: give another with --inventory PATH)", err)
	}
	return db, nil
}
