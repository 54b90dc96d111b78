package main

// The progress a command prints while it waits for a service to
// converge. It is written for logs as much as for terminals: lines are
// only ever appended, and a line is printed only when what it says
// changed, so a CI log reads as a history:
//
//	overall progress: 0 out of 3 tasks
//	1/3: pending   [============>                                      ]
//	2/3: preparing [===============================>                   ]
//	3/3: no suitable node (insufficient memory on 3 nodes)
//	overall progress: 1 out of 3 tasks
//	1/3: running   [==================================================>]
//	2/3: failed: task: non-zero exit (1)
//	2/3: ready     [=====================================>             ]
//	...
//	verify: Waiting 1s to verify that tasks are stable...
//	verify: Service converged

import (
	"fmt"
	"io"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// progressSteps is the life of a task, in order, up to COMPLETE; a
// service's progress bar ends at RUNNING, a job's at COMPLETE.
var progressSteps = []api.TaskState{
	api.TaskState_TASK_STATE_NEW,
	api.TaskState_TASK_STATE_PENDING,
	api.TaskState_TASK_STATE_ASSIGNED,
	api.TaskState_TASK_STATE_ACCEPTED,
	api.TaskState_TASK_STATE_PREPARING,
	api.TaskState_TASK_STATE_READY,
	api.TaskState_TASK_STATE_STARTING,
	api.TaskState_TASK_STATE_RUNNING,
	api.TaskState_TASK_STATE_COMPLETE,
}

// progressBarWidth is the width of a bar between its brackets, as docker's.
const progressBarWidth = 50

// progressBar draws step out of total, e.g. "[=====>      ]".
func progressBar(step, total int) string {
	filled := progressBarWidth * step / total
	return "[" + strings.Repeat("=", filled) + ">" + strings.Repeat(" ", progressBarWidth-filled) + "]"
}

// isFailure reports whether a task ended in failure.
func isFailure(s api.TaskState) bool {
	return s == api.TaskState_TASK_STATE_FAILED || s == api.TaskState_TASK_STATE_REJECTED
}

// slotText is what the progress says of one task: "failed: ERROR" for a
// failed or rejected task, the error alone for a task that has one (a
// pending task's scheduler reason), else its state and a bar; a state
// past the bar's end (e.g. shutdown) is printed alone.
func slotText(t *api.Task, job bool) string {
	st := t.GetStatus()
	name := strings.ToLower(taskStateName(st.GetState()))
	switch {
	case isFailure(st.GetState()) && st.GetErr() != "":
		return name + ": " + oneLine(st.GetErr())
	case isFailure(st.GetState()):
		return name
	case st.GetErr() != "":
		return oneLine(st.GetErr())
	}
	steps := progressSteps[:len(progressSteps)-1]
	if job {
		steps = progressSteps
	}
	for i, s := range steps {
		if s == st.GetState() {
			return fmt.Sprintf("%-9s %s", name, progressBar(i+1, len(steps)))
		}
	}
	return name
}

// progressPrinter prints the progress of one service as it changes.
type progressPrinter struct {
	w io.Writer
	// started is set after the first look.
	started bool
	// overall is the last overall progress printed.
	overall string
	// lines is the last text printed for each label.
	lines map[string]string
	// reported holds the IDs of failed tasks already shown, or present
	// at the first look (failures from before the command).
	reported map[string]bool
	// messages holds the texts shown in compact mode (too many slots
	// for a line each), where each distinct error is printed once.
	messages map[string]bool
}

// newProgressPrinter returns a printer writing to w.
func newProgressPrinter(w io.Writer) *progressPrinter {
	return &progressPrinter{w: w, lines: map[string]string{}, reported: map[string]bool{}, messages: map[string]bool{}}
}

// show prints what changed since the last look: the overall progress,
// then each failure not yet shown (once its slot is shown; failures
// present at the first look are from before the command and not shown),
// then each slot whose line changed.
func (p *progressPrinter) show(c convergence) {
	baseline := !p.started
	p.started = true
	if o := c.overall(); o != p.overall {
		p.overall = o
		fmt.Fprintf(p.w, "overall progress: %s\n", o)
	}
	compact := c.desired > maxProgressSlots || len(c.slots) > maxProgressSlots
	for _, f := range c.failures {
		id := f.task.GetId()
		switch {
		case p.reported[id]:
		case baseline:
			p.reported[id] = true
		case f.label != "" || compact:
			p.reported[id] = true
			p.print(f.label, slotText(f.task, c.job), compact, true)
		}
	}
	for _, s := range c.slots {
		if isFailure(s.task.GetStatus().GetState()) {
			p.reported[s.task.GetId()] = true
		}
		text := slotText(s.task, c.job)
		if compact {
			if s.task.GetStatus().GetErr() != "" {
				p.print(s.label, text, true, false)
			}
			continue
		}
		if p.lines[s.label] != text {
			p.print(s.label, text, false, false)
		}
	}
}

// print prints "LABEL: TEXT" and remembers it, or in compact mode the
// text alone, once per distinct text. A past failure does not replace
// what the label's line says now.
func (p *progressPrinter) print(label, text string, compact, past bool) {
	if compact {
		if !p.messages[text] {
			p.messages[text] = true
			fmt.Fprintln(p.w, text)
		}
		return
	}
	if !past {
		p.lines[label] = text
	}
	fmt.Fprintf(p.w, "%s: %s\n", label, text)
}
