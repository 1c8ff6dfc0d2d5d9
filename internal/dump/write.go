package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"xfskit/internal/stream"
	"xfskit/inventory"
)

// errWalkDone ends an inode walk once a stream's share is written.
var errWalkDone = errors.New("walk done")

// runStream writes (or continues) one stream: the directory section, then
// the stream's share of the files in inode order, then the trailer. On
// failure or cancellation the stream is stopped without a trailer, so that
// it reads as interrupted and resumes from its last checkpoint.
func (d *dumper) runStream(ctx context.Context, r *streamRun) (err error) {
	comp, err := stream.ParseCompression(r.st.Compression)
	if err != nil {
		return err
	}
	wopts := stream.WriterOptions{
		Compression: comp, ChunkSize: r.st.ChunkSize, BlockSize: r.st.BlockSize,
		MaxMediaSize: r.st.MediaSize, Concurrency: d.workers(r.st.Count),
		OnCheckpoint: func(cp stream.Checkpoint) { r.cp.Store(&cp) },
	}
	if r.st.Split {
		wopts.OpenMedia = r.out.openMedia
	}
	var (
		w  *stream.Writer
		at *stream.Checkpoint // where a resumed stream continues
	)
	if r.resume && len(r.media) > 0 {
		var info stream.ResumeInfo
		w, info, err = stream.Resume(r.media, wopts)
		switch {
		case errors.Is(err, stream.ErrNoCheckpoint):
			// Not even the header got out: start the stream afresh.
			r.out.close()
			w = nil
		case err != nil:
			return fmt.Errorf("stream %d (%s): resume: %w", r.st.Index, r.st.Dest, err)
		default:
			at = &info.Checkpoint
			d.files.Add(int64(at.Files))
			d.data.Add(int64(at.DataBytes))
		}
	}
	if w == nil {
		out, err := r.out.create()
		if err != nil {
			return fmt.Errorf("stream %d: %w", r.st.Index, err)
		}
		if w, err = stream.NewWriter(out, r.hdr, wopts); err != nil {
			return fmt.Errorf("stream %d (%s): %w", r.st.Index, r.st.Dest, err)
		}
	}
	closed := false
	defer func() {
		if !closed {
			// Make every complete record group durable, then stop the
			// media so that Close cannot add a trailer.
			w.Flush()
			r.out.stop.Store(true)
			w.Close()
			r.collect(w)
		}
	}()

	if err := d.writeDirs(ctx, w, at); err != nil {
		return fmt.Errorf("stream %d (%s): %w", r.st.Index, r.st.Dest, err)
	}
	if err := d.writeFiles(ctx, w, r, at); err != nil {
		return fmt.Errorf("stream %d (%s): %w", r.st.Index, r.st.Dest, err)
	}
	closed = true
	if err := w.Close(); err != nil {
		r.collect(w)
		return fmt.Errorf("stream %d (%s): %w", r.st.Index, r.st.Dest, err)
	}
	if err := r.out.sync(); err != nil {
		return fmt.Errorf("stream %d: %w", r.st.Index, err)
	}
	return d.finishStream(r, w)
}

// collect fills the stream's result from the writer (Bytes: what this
// process wrote; finishStream replaces it with the media files' sizes).
func (r *streamRun) collect(w *stream.Writer) {
	cp := w.Checkpoint()
	r.res.Files = int64(cp.Files)
	r.res.DataBytes = int64(cp.DataBytes)
	r.res.Media, _ = r.out.mediaFiles()
	r.res.Bytes = w.Stats().Physical
}

// finishStream records a complete stream and its media files.
func (d *dumper) finishStream(r *streamRun, w *stream.Writer) error {
	r.collect(w)
	names, sizes := r.out.mediaFiles()
	var total int64
	for k, p := range names {
		sz := sizes[k]
		if sz < 0 {
			sz = w.Stats().Physical
		}
		total += sz
		if err := d.db.AddMediaFile(inventoryMedia(d.session, r.st.Index, k, p, sz)); err != nil {
			return err
		}
	}
	r.res.Bytes = total
	return d.db.UpdateStream(d.session, r.st.Index, total, inventory.StatusComplete)
}

// writeDirs writes the directory section, or what is left of it.
func (d *dumper) writeDirs(ctx context.Context, w *stream.Writer, at *stream.Checkpoint) error {
	if at != nil && at.Phase != stream.PhaseDirs {
		return nil // the section is complete
	}
	for _, dir := range d.sel.dirs {
		if at != nil && at.Dirs > 0 && dir.meta.Ino <= at.LastIno {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.BeginDir(dir.meta, dir.parent, dir.xattrs); err != nil {
			return err
		}
		if err := w.AddEntries(dir.entries...); err != nil {
			return err
		}
		if err := w.EndDir(); err != nil {
			return err
		}
	}
	return w.EndDirs()
}

// writeFiles writes the stream's share of the files after the resume
// point: a fileReader reads them ahead on its own goroutine (see
// prefetch.go) while this one writes.
func (d *dumper) writeFiles(ctx context.Context, w *stream.Writer, r *streamRun, at *stream.Checkpoint) error {
	files := r.files
	if at != nil && at.Phase != stream.PhaseDirs && at.Files > 0 {
		i := 0
		for i < len(files) && files[i].ino <= at.LastIno {
			i++
		}
		files = files[i:]
	}
	if len(files) == 0 {
		return nil
	}
	rctx, cancel := context.WithCancel(ctx)
	fr := newFileReader(rctx, d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fr.run(files)
	}()
	err := d.writeOps(w, fr)
	// Stop the reader (if writing failed) and wait for it: no goroutine
	// outlives the call.
	cancel()
	<-done
	if err == nil {
		err = ctx.Err() // the reader stops quietly when interrupted
	}
	return err
}

// isIOError tells device failures, which end a dump, from everything else
// (corruption, unsupported inodes), which is reported per inode.
func isIOError(err error) bool {
	var pe *os.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno) || errors.Is(err, io.ErrUnexpectedEOF)
}

func inventoryMedia(session string, stream, seq int, path string, size int64) inventory.MediaFile {
	return inventory.MediaFile{SessionID: session, Stream: stream, Seq: seq, Path: path, Bytes: size}
}
