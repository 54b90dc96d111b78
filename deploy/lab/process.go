package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a process the lab started: its PID and its start time, which
// together name it even after the PID is reused.
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// startTime returns the start time of pid (field 22 of /proc/PID/stat,
// clock ticks since boot) and whether it is a zombie.
func startTime(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("lab: unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("lab: short /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z", err
}

// StartTime returns the start time of a running process, as kept in
// Config.OwnerStart and Proc.Start.
func StartTime(pid int) (uint64, error) {
	start, zombie, err := startTime(pid)
	if err == nil && zombie {
		err = fmt.Errorf("lab: process %d has exited", pid)
	}
	return start, err
}

// Alive reports whether the process still runs (a zombie does not).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, zombie, err := startTime(p.PID)
	return err == nil && !zombie && start == p.Start
}

// Signal sends sig if the PID still names this process.
func (p Proc) Signal(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: signal %v to pid %d: %w", sig, p.PID, err)
	}
	return nil
}

// Terminate sends sig, waits up to grace for the process to end, then
// kills it and waits for that too (bounded).
func (p Proc) Terminate(sig syscall.Signal, grace time.Duration) error {
	if err := p.Signal(sig); err != nil {
		return err
	}
	if p.waitGone(grace) {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.waitGone(10 * time.Second) {
		return fmt.Errorf("lab: pid %d survived SIGKILL for 10s", p.PID)
	}
	return nil
}

func (p Proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// reaper waits for the children this process started, so that none stays
// a zombie while the lab runs.
var reaper sync.WaitGroup

// spawn starts argv inside the network namespace netns (a name under
// /run/netns; "" for the machine's own), in a session of its own so that
// it outlives the caller, with stdout and stderr appended to logPath.
func spawn(netns, logPath, dir string, env []string, argv ...string) (Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("lab: open log: %w", err)
	}
	defer logf.Close()
	args := argv
	if netns != "" {
		// nsenter execs argv: the PID is argv's own.
		args = append([]string{"nsenter", "--net=" + filepath.Join(netnsDir, netns), "--"}, argv...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("lab: start %s: %w", argv[0], err)
	}
	reaper.Add(1)
	go func() { defer reaper.Done(); _ = cmd.Wait() }()
	start, _, err := startTime(cmd.Process.Pid)
	if err != nil {
		return Proc{}, fmt.Errorf("lab: %s exited at once; see %s", argv[0], logPath)
	}
	return Proc{PID: cmd.Process.Pid, Start: start}, nil
}

// processesMatching returns the PIDs whose command line holds every one
// of words (as whole arguments).
func processesMatching(words ...string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		all := true
		for _, w := range words {
			found := false
			for _, a := range args {
				if a == w {
					found = true
					break
				}
			}
			if !found {
				all = false
				break
			}
		}
		if all {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killCgroupTree SIGKILLs every process in the cgroups named after
// containerd namespace ns (runc puts containers at /NS/ID in every
// controller), then removes the emptied cgroup folders.
func killCgroupTree(ns string) {
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	roots = append(roots, filepath.Join("/sys/fs/cgroup", ns))
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
	// Folders empty out once the kernel has reaped the processes.
	deadline := time.Now().Add(5 * time.Second)
	for _, root := range roots {
		for {
			if err := removeCgroupDirs(root); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// removeCgroupDirs removes root and the folders below it, deepest first.
func removeCgroupDirs(root string) error {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var firstErr error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// unmountUnder detaches every mount at or below dir, deepest first: task
// network namespaces and container root file systems.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
