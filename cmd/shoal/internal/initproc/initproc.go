// Package initproc is `shoal init`: a minimal PID 1 for containers whose
// service asks for one (--init). It starts the task's command, forwards
// every signal it receives to it, reaps every zombie the container's
// processes leave, and exits with the command's exit status (128+N when
// the command was killed by signal N).
package initproc

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Run runs args as the container's command and returns the exit status
// to exit with; 127 when the command cannot be started.
func Run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "shoal init: no command to run")
		return 127
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "shoal init: %v\n", err)
		return 127
	}
	child := cmd.Process.Pid
	for sig := range sigs {
		s, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		if s != syscall.SIGCHLD {
			_ = syscall.Kill(child, s)
			continue
		}
		if code, done := reap(child); done {
			return code
		}
	}
	return 0
}

// reap collects every exited process; done reports that child was one
// of them, with its exit status.
func reap(child int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return code, done
		}
		if pid == child {
			done = true
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}
