package dump

import (
	"context"
	"fmt"
	"reflect"

	"github.com/google/uuid"
)

// resume continues the most recent interrupted session of the image's
// filesystem: the same selection is computed again from the recorded
// options (the image must be unchanged), and every stream continues after
// the last checkpoint found intact in its media files. Streams that were
// already complete are reopened and closed again, which rewrites their
// trailer and gives their counts.
func (d *dumper) resume(ctx context.Context, fp string) (*Result, error) {
	fsUUID := d.fs.SB.UUID.String()
	s, err := d.db.LatestInterrupted(fsUUID)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%w: filesystem %s has no interrupted session in inventory %s", ErrNothingToResume, fsUUID, d.db.Path())
	}
	cps, err := d.db.Checkpoints(s.ID)
	if err != nil {
		return nil, err
	}
	states := map[int]resumeState{}
	for _, cp := range cps {
		st, err := unmarshalResumeState(cp.Data)
		if err != nil || st.Version != resumeStateVersion {
			return nil, fmt.Errorf("session %s stream %d: checkpoint was not written by this version of dump; start a new dump", s.ID, cp.Stream)
		}
		states[cp.Stream] = st
	}
	if len(s.Streams) == 0 || len(states) != len(s.Streams) {
		return nil, fmt.Errorf("session %s: %d streams recorded but %d with resume information; start a new dump", s.ID, len(s.Streams), len(states))
	}
	first := states[0]
	for i := range len(s.Streams) {
		st, ok := states[i]
		if !ok || st.Count != len(s.Streams) || st.Fingerprint != first.Fingerprint || st.Level != first.Level ||
			!reflect.DeepEqual(st.Subtrees, first.Subtrees) || !reflect.DeepEqual(st.Since, first.Since) {
			return nil, fmt.Errorf("session %s: inconsistent resume information for stream %d; start a new dump", s.ID, i)
		}
	}
	if first.Fingerprint != fp {
		return nil, fmt.Errorf("session %s cannot be resumed: the filesystem changed since it was interrupted (then: %s; now: %s); start a new dump", s.ID, first.Fingerprint, fp)
	}
	sid, err := uuid.Parse(s.ID)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", s.ID, err)
	}
	d.session = s.ID
	if err := d.prepare(ctx, first.Since, first.Subtrees); err != nil {
		return nil, err
	}
	runs := make([]*streamRun, len(s.Streams))
	release := func() {
		for _, r := range runs {
			if r != nil {
				r.out.close()
			}
		}
	}
	for i := range runs {
		st := states[i]
		kind, err := destKindOf(st.Dest)
		if err != nil {
			release()
			return nil, fmt.Errorf("session %s stream %d: %w", s.ID, i, err)
		}
		if kind != destFile {
			release()
			return nil, fmt.Errorf("session %s stream %d was written to %s %s, which cannot be read back: it cannot be resumed; start a new dump", s.ID, i, kind, st.Dest)
		}
		r := d.newRun(st, sid, kind)
		r.resume = true
		runs[i] = r
		// Lock and open the media now, before the session is touched:
		// a dump still writing them makes this fail.
		if r.media, err = r.out.existingMedia(); err != nil {
			release()
			return nil, fmt.Errorf("session %s stream %d: %w", s.ID, i, err)
		}
	}
	if err := d.db.ResumeSession(s.ID); err != nil {
		release()
		return nil, err
	}
	res := &Result{SessionID: s.ID, FSUUID: fsUUID, Level: first.Level, BaseID: first.BaseID,
		Subtrees: first.Subtrees, Start: s.Start, Resumed: true}
	d.noteReplay(res)
	return d.run(ctx, res, runs)
}
