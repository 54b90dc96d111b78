package containerd

// Task output capture. The shim writes a task's stdout and stderr into
// two FIFOs (under StateDir/fifo) that this process reads: every line is
// stamped with the time it was read and appended as one JSON record
//
//	{"t": UNIX-NANOS, "s": "stdout"|"stderr", "d": "LINE"}
//
// to StateDir/logs/TASKID.log, which is rotated once it would exceed
// Executor.LogMaxBytes (the old file becomes TASKID.log.1, replacing the
// previous one). After an agent restart the controller attaches to the
// running task's FIFOs again (Reattach), so capture resumes; what the task
// writes while no agent reads waits in the FIFO's kernel buffer (64 KiB:
// a task that writes more blocks until the agent is back).
//
// Trade-offs: timestamps are the read time, not the write time (the
// difference is the pipe latency, microseconds while an agent reads); a
// line longer than maxLineBytes is split into several records; a final
// line without a newline is written when the executor lets go of the task
// (Remove or Close) rather than at exit.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/shoalhq/shoal/proto/api"
)

// DefaultLogMaxBytes is the size at which a task's log file is rotated
// when Config.LogMaxBytes is zero.
const DefaultLogMaxBytes = 10 << 20

// maxLineBytes is the longest line kept as one record.
const maxLineBytes = 16 << 10

// followPoll is how often a followed log is checked for new records.
const followPoll = 100 * time.Millisecond

// logRecord is one line of a log file.
type logRecord struct {
	T int64  `json:"t"`
	S string `json:"s"`
	D string `json:"d"`
}

// rotatingFile appends records to a file and rotates it (keeping one
// old file, path+".1") before a write would make it exceed max bytes.
// It is safe for concurrent use.
type rotatingFile struct {
	path string
	max  int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

// openRotating opens (creating) path for appending. max <= 0 means
// DefaultLogMaxBytes.
func openRotating(path string, max int64) (*rotatingFile, error) {
	if max <= 0 {
		max = DefaultLogMaxBytes
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingFile{path: path, max: max, f: f, size: st.Size()}, nil
}

// Write appends p whole (one or more records); the file is rotated first
// when it is not empty and p would take it past the limit.
func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.max {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate renames the file to path.1 and starts a new one. r.mu is held.
func (r *rotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	r.f = nil
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	r.f, r.size = f, 0
	return nil
}

// Close closes the file; later writes fail.
func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// lineWriter turns one stream's bytes into timestamped records written
// to out. It is used by one goroutine at a time; Close writes a pending
// partial line.
type lineWriter struct {
	stream string
	out    io.Writer
	now    func() time.Time
	buf    []byte
}

// Write implements io.Writer: each complete line (without its newline)
// becomes one record; a line longer than maxLineBytes is cut.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.buf = append(w.buf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < maxLineBytes {
				break
			}
			i = maxLineBytes
			out = w.appendRecord(out, w.buf[:i])
			w.buf = w.buf[i:]
			continue
		}
		out = w.appendRecord(out, bytes.TrimSuffix(w.buf[:i], []byte{'\r'}))
		w.buf = w.buf[i+1:]
	}
	w.buf = append(w.buf[:0:0], w.buf...)
	if len(out) == 0 {
		return n, nil
	}
	if _, err := w.out.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// appendRecord appends the JSON record of line to out.
func (w *lineWriter) appendRecord(out, line []byte) []byte {
	b, _ := json.Marshal(logRecord{T: w.now().UnixNano(), S: w.stream, D: string(line)})
	return append(append(out, b...), '\n')
}

// Close writes the partial line left, if any.
func (w *lineWriter) Close() error {
	if len(w.buf) == 0 {
		return nil
	}
	out := w.appendRecord(nil, w.buf)
	w.buf = nil
	_, err := w.out.Write(out)
	return err
}

// taskLog is the capture of one task's output.
type taskLog struct {
	file     *rotatingFile
	out, err *syncLineWriter

	mu sync.Mutex
	io cio.IO // the FIFOs being read; nil until set
}

// setIO records the FIFO reader of the task (the first one wins).
func (l *taskLog) setIO(i cio.IO) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.io == nil {
		l.io = i
	}
}

// attached reports whether the task's FIFOs are being read.
func (l *taskLog) attached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.io != nil
}

// syncLineWriter guards a lineWriter so that Close can run while the
// copy goroutine still writes.
type syncLineWriter struct {
	mu sync.Mutex
	w  lineWriter
}

func (s *syncLineWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncLineWriter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Close()
}

// close stops reading the FIFOs, flushes partial lines and closes the
// file. With removeFIFOs (the task is gone) the FIFOs are deleted too;
// otherwise they stay for a later executor to attach to.
func (l *taskLog) close(removeFIFOs bool) error {
	l.mu.Lock()
	i := l.io
	l.mu.Unlock()
	var errs []error
	if i != nil {
		i.Cancel()
		i.Wait()
		if removeFIFOs {
			errs = append(errs, i.Close())
			if p := i.Config().Stdout; p != "" {
				errs = append(errs, os.RemoveAll(filepath.Dir(p)))
			}
		}
	}
	errs = append(errs, l.out.Close(), l.err.Close(), l.file.Close())
	return errors.Join(errs...)
}

// taskLogFor returns the capture of a task's output, opening it (and its
// log file) the first time.
func (e *Executor) taskLogFor(taskID string) (*taskLog, error) {
	e.logsMu.Lock()
	defer e.logsMu.Unlock()
	if l, ok := e.logs[taskID]; ok {
		return l, nil
	}
	f, err := openRotating(e.LogPath(taskID), e.cfg.LogMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("open log of task %s: %w", taskID, err)
	}
	l := &taskLog{
		file: f,
		out:  &syncLineWriter{w: lineWriter{stream: "stdout", out: f, now: time.Now}},
		err:  &syncLineWriter{w: lineWriter{stream: "stderr", out: f, now: time.Now}},
	}
	e.logs[taskID] = l
	return l, nil
}

// closeTaskLog ends a task's capture and deletes its FIFOs (Remove, or a
// failed Start), if it is open.
func (e *Executor) closeTaskLog(taskID string) error {
	e.logsMu.Lock()
	l, ok := e.logs[taskID]
	delete(e.logs, taskID)
	e.logsMu.Unlock()
	if !ok {
		return nil
	}
	return l.close(true)
}

// closeTaskLogs ends every capture, leaving the FIFOs (Close).
func (e *Executor) closeTaskLogs() error {
	e.logsMu.Lock()
	logs := e.logs
	e.logs = map[string]*taskLog{}
	e.logsMu.Unlock()
	var errs []error
	for _, l := range logs {
		errs = append(errs, l.close(false))
	}
	return errors.Join(errs...)
}

// newTaskIO is the cio.Creator of a new task: FIFOs read into its log.
func (e *Executor) newTaskIO(taskID string) (cio.Creator, error) {
	l, err := e.taskLogFor(taskID)
	if err != nil {
		return nil, err
	}
	return cio.NewCreator(cio.WithStreams(nil, l.out, l.err), cio.WithFIFODir(fifoDir(e.cfg.StateDir))), nil
}

// attachTaskIO reads an existing task's FIFOs into its log again (after
// an agent restart). It does nothing when this executor reads them
// already. load is ctr.Task.
func (e *Executor) attachTaskIO(ctx context.Context, taskID string, load func(context.Context, cio.Attach) (client.Task, error)) error {
	l, err := e.taskLogFor(taskID)
	if err != nil {
		return err
	}
	if l.attached() {
		return nil
	}
	t, err := load(ctx, cio.NewAttach(cio.WithStreams(nil, l.out, l.err)))
	if err != nil {
		return err
	}
	if t.IO() != nil {
		l.setIO(t.IO())
	}
	return nil
}

// taskStarted records the FIFO reader of a task made with newTaskIO.
func (e *Executor) taskStarted(taskID string, t client.Task) {
	e.logsMu.Lock()
	l := e.logs[taskID]
	e.logsMu.Unlock()
	if l != nil && t.IO() != nil {
		l.setIO(t.IO())
	}
}

// ReadLogs sends a task's captured output, oldest first, with task_id set
// (node_id is left to the caller): records at or after since (Unix nanos;
// 0: all), of which only the last tail when tail >= 0 (tail 0 sends no old
// record). With follow it then sends new records as they are written,
// across rotations, until ctx ends, and returns nil; without follow it
// returns once the old records are sent. A task with no log file has no
// output yet: it sends nothing (following, it waits for the file). A
// malformed record is skipped. A follower polls (every 100 ms): should the
// file rotate twice between two polls, the records of the file in between
// are not sent. It fails with the error of send, or when a
// file cannot be read.
func (e *Executor) ReadLogs(ctx context.Context, taskID string, tail, since int64, follow bool, send func(*api.LogMessage) error) error {
	path := e.LogPath(taskID)
	toMsg := func(r logRecord) *api.LogMessage {
		m := &api.LogMessage{TaskId: taskID, Timestamp: r.T, Data: []byte(r.D)}
		if r.S == "stderr" {
			m.Stream = api.LogMessage_STREAM_STDERR
		}
		return m
	}
	var old []logRecord
	keep := func(r logRecord) {
		if r.T < since || tail == 0 {
			return
		}
		old = append(old, r)
		if tail > 0 && int64(len(old)) > 2*tail {
			old = append(old[:0], old[int64(len(old))-tail:]...)
		}
	}
	if _, err := scanRecords(path+".1", 0, keep); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Read the current file through an open handle, so that a rotation
	// while following is noticed (the handle then names the old file).
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var off int64
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if f != nil {
		if off, err = scanFile(f, 0, keep); err != nil {
			return err
		}
	}
	if tail > 0 && int64(len(old)) > tail {
		old = old[int64(len(old))-tail:]
	}
	for _, r := range old {
		if err := send(toMsg(r)); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	var sendErr error
	sendNew := func(r logRecord) {
		if sendErr == nil && r.T >= since {
			sendErr = send(toMsg(r))
		}
	}
	ticker := time.NewTicker(followPoll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if f != nil {
			if off, err = scanFile(f, off, sendNew); err != nil {
				return err
			}
			if sendErr != nil {
				return sendErr
			}
		}
		// A new file at path (rotated, or made after we looked): finish
		// the old handle, then go on from the start of the new one.
		st, err := os.Stat(path)
		if err != nil {
			continue
		}
		if f != nil {
			if cur, err := f.Stat(); err == nil && os.SameFile(cur, st) {
				continue
			}
			if _, err := scanFile(f, off, sendNew); err != nil {
				return err
			}
			if sendErr != nil {
				return sendErr
			}
			f.Close()
			f = nil
		}
		nf, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		f, off = nf, 0
	}
}

// scanRecords reads the records of the file at path from offset off.
func scanRecords(path string, off int64, fn func(logRecord)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return off, err
	}
	defer f.Close()
	return scanFile(f, off, fn)
}

// scanFile calls fn with each complete record of f from offset off and
// returns the offset after the last complete one (a record still being
// written is left for the next call).
func scanFile(f *os.File, off int64, fn func(logRecord)) (int64, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		off += int64(len(line))
		var r logRecord
		if json.Unmarshal(line, &r) == nil {
			fn(r)
		}
	}
}

func fifoDir(state string) string { return filepath.Join(state, "fifo") }
