package inventory

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// ReportTimeFormat is how Report prints times: local calendar time with
// nanoseconds and zone offset.
const ReportTimeFormat = "2006-01-02 15:04:05.000000000 -0700"

// Report writes sessions for `dump -I`. With asJSON it writes one JSON
// object {"sessions": [...]} (the Session structs, times in RFC 3339 with
// nanoseconds). Otherwise it writes the tab-indented tree of xfsdump -I:
// sessions grouped by filesystem in order of first appearance, each with
// its streams and their media files.
func Report(w io.Writer, sessions []Session, asJSON bool) error {
	if sessions == nil {
		sessions = []Session{}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Sessions []Session `json:"sessions"`
		}{sessions})
	}
	bw := bufio.NewWriter(w)
	if len(sessions) == 0 {
		fmt.Fprintln(bw, "no matching dump sessions")
		return bw.Flush()
	}
	// Group by filesystem, keeping the given order within each group.
	var order []string
	groups := map[string][]Session{}
	for _, s := range sessions {
		if _, ok := groups[s.FSUUID]; !ok {
			order = append(order, s.FSUUID)
		}
		groups[s.FSUUID] = append(groups[s.FSUUID], s)
	}
	for fi, fs := range order {
		ss := groups[fs]
		fmt.Fprintf(bw, "file system %d:\n", fi)
		kv(bw, 1, "fs id", fs)
		kv(bw, 1, "fs label", fmt.Sprintf("%q", ss[0].FSLabel))
		kv(bw, 1, "device", ss[0].FSSource)
		for si, s := range ss {
			fmt.Fprintf(bw, "\tsession %d:\n", si)
			kv(bw, 2, "time", fmtTime(s.Start))
			kv(bw, 2, "end time", fmtTime(s.End))
			kv(bw, 2, "session label", fmt.Sprintf("%q", s.Label))
			kv(bw, 2, "session id", s.ID)
			kv(bw, 2, "level", fmt.Sprint(s.Level))
			if s.BaseID != "" {
				kv(bw, 2, "base session", s.BaseID)
			}
			if len(s.Subtrees) == 0 {
				kv(bw, 2, "subtree", "NO")
			} else {
				q := make([]string, len(s.Subtrees))
				for i, p := range s.Subtrees {
					q[i] = fmt.Sprintf("%q", p)
				}
				kv(bw, 2, "subtree", "YES "+strings.Join(q, " "))
			}
			kv(bw, 2, "status", string(s.Status))
			kv(bw, 2, "files", fmt.Sprint(s.Counts.Files))
			kv(bw, 2, "directories", fmt.Sprint(s.Counts.Dirs))
			kv(bw, 2, "bytes", fmt.Sprint(s.Counts.Bytes))
			comp := s.Compression
			if comp == "" {
				comp = "none"
			}
			kv(bw, 2, "compression", comp)
			kv(bw, 2, "streams", fmt.Sprint(len(s.Streams)))
			for _, t := range s.Streams {
				fmt.Fprintf(bw, "\t\tstream %d:\n", t.Index)
				kv(bw, 3, "pathname", t.Dest)
				kv(bw, 3, "media label", fmt.Sprintf("%q", t.MediaLabel))
				kv(bw, 3, "size", fmt.Sprint(t.Bytes))
				if c := t.Checkpoint; c != nil {
					kv(bw, 3, "resume at", fmt.Sprintf("ino %d offset %d", c.LastIno, c.Offset))
				}
				kv(bw, 3, "status", string(t.Status))
				kv(bw, 3, "media files", fmt.Sprint(len(t.Media)))
				for mi, m := range t.Media {
					fmt.Fprintf(bw, "\t\t\tmedia file %d:\n", mi)
					kv(bw, 4, "mfile index", fmt.Sprint(m.Seq))
					kv(bw, 4, "mfile path", m.Path)
					kv(bw, 4, "mfile size", fmt.Sprint(m.Bytes))
				}
			}
		}
	}
	return bw.Flush()
}

// kv writes "key:<tabs>value" at the given tab depth, aligning values on
// the next tab stop at least 16 columns after the key like xfsdump -I.
func kv(w io.Writer, depth int, key, val string) {
	sep := "\t"
	if len(key)+1 < 8 {
		sep = "\t\t"
	}
	fmt.Fprintf(w, "%s%s:%s%s\n", strings.Repeat("\t", depth), key, sep, val)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(ReportTimeFormat)
}
