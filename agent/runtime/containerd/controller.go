package containerd

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultStopGracePeriod is how long Shutdown waits after the stop signal
// before it kills the task, when the spec does not say.
const DefaultStopGracePeriod = 10 * time.Second

// cleanupTimeout bounds the clean-up of a failed Prepare or Start, which
// runs even when the call's context has ended.
const cleanupTimeout = 30 * time.Second

// Controller is the runtime.Controller of one task on containerd; its
// container ID is the task ID. Every method finds the container and its
// task in containerd's records, so a Controller keeps no state that an
// agent restart would lose, except the health check's probes and state
// (see Health), which a new controller starts again. It is used by one
// goroutine at a time.
type Controller struct {
	e    *Executor
	task *api.Task
	id   string

	// health is the resolved health check (nil: none), once
	// healthResolved; mon probes the running task, once started.
	health         *healthConfig
	healthResolved bool
	mon            *healthMonitor
	// lastHealth is the health Reattach was told of.
	lastHealth string
}

var (
	_ runtime.Controller        = (*Controller)(nil)
	_ runtime.Reattacher        = (*Controller)(nil)
	_ runtime.ContainerStatuser = (*Controller)(nil)
	_ runtime.HealthChecker     = (*Controller)(nil)
)

// Prepare implements runtime.Controller: it checks the mounts, makes sure
// the image is there (pulling it), makes the network namespace and
// creates the container. A container that already exists is kept (and
// its network namespace made again if it was lost). On failure nothing
// is left behind. A pull or spec failure wraps runtime.ErrTaskRejected.
func (c *Controller) Prepare(ctx context.Context) (err error) {
	cl := c.e.client
	hostNet := c.task.GetSpec().NetworkMode() == api.NetworkHost
	if _, err := cl.LoadContainer(ctx, c.id); err == nil {
		if hostNet {
			return nil
		}
		if err := createNetNS(c.e.NetNSPath(c.id)); err != nil {
			return err
		}
		_, err := c.attachNetwork(ctx)
		return err
	} else if !errdefs.IsNotFound(err) {
		return classify(err, "load container "+c.id)
	}
	cs := c.task.GetSpec().GetContainer()
	if err := checkMounts(cs.GetMounts()); err != nil {
		return err
	}
	if err := checkHealthSpec(cs.GetHealthcheck()); err != nil {
		return err
	}
	img, err := c.e.ensureImage(ctx, pinDigest(cs.GetImage(), c.task.GetImageDigest()), cs.GetRegistryAuth())
	if err != nil {
		return err
	}
	netns := ""
	if !hostNet {
		netns = c.e.NetNSPath(c.id)
		if err := createNetNS(netns); err != nil {
			return fmt.Errorf("task %s: %w", c.id, err)
		}
	}
	defer func() {
		if err != nil {
			c.cleanupPrepare()
		}
	}()
	mounts, err := ociMounts(c.e.cfg.StateDir, cs.GetMounts())
	if err != nil {
		return err
	}
	resolv, err := c.attachNetwork(ctx)
	if err != nil {
		return err
	}
	if resolv != "" {
		mounts = append(mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv, Options: []string{"rbind", "ro"}})
	}
	opts, err := specOpts(ctx, c.task, img, netns, mounts)
	if err != nil {
		return err
	}
	if cs.GetInit() {
		o, err := c.e.initOpts()
		if err != nil {
			return err
		}
		opts = append(opts, o...)
	}
	// A snapshot without a container (a Remove cut short) is stale.
	if err := cl.SnapshotService(snapshotter).Remove(ctx, c.id); err != nil && !errdefs.IsNotFound(err) {
		return classify(err, "remove stale snapshot "+c.id)
	}
	_, err = cl.NewContainer(ctx, c.id,
		client.WithImage(img),
		client.WithSnapshotter(snapshotter),
		client.WithNewSnapshot(c.id, img),
		client.WithContainerLabels(containerLabels(c.task)),
		c.e.runtimeOpt(),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errdefs.IsUnavailable(err) {
			return classify(err, "create container "+c.id)
		}
		return fmt.Errorf("%w: create container %s: %v", runtime.ErrTaskRejected, c.id, err)
	}
	return nil
}

// cleanupPrepare removes what a failed Prepare may have made: the
// snapshot (NewContainer makes it before the container record) and the
// network namespace.
func (c *Controller) cleanupPrepare() {
	ctx, cancel := context.WithTimeout(c.nsContext(), cleanupTimeout)
	defer cancel()
	if err := c.e.client.SnapshotService(snapshotter).Remove(ctx, c.id); err != nil && !errdefs.IsNotFound(err) {
		c.e.log.Warn("remove snapshot of failed prepare", "task", c.id, "err", err)
	}
	c.detachNetwork()
	if err := removeNetNS(c.e.NetNSPath(c.id)); err != nil {
		c.e.log.Warn("remove netns of failed prepare", "task", c.id, "err", err)
	}
}

// attachNetwork attaches the task's network namespace to its networks,
// or to the node's bridge when it has none (Config.Network), and returns
// the resolv.conf to mount. A failure is temporary: the step is tried
// again.
func (c *Controller) attachNetwork(ctx context.Context) (string, error) {
	n := c.e.cfg.Network
	if n == nil || c.task.GetSpec().NetworkMode() == api.NetworkHost {
		return "", nil
	}
	resolv, err := n.Attach(ctx, c.task, c.e.NetNSPath(c.id))
	if err != nil {
		return "", fmt.Errorf("%w: task %s: network: %v", runtime.ErrTemporary, c.id, err)
	}
	return resolv, nil
}

// detachNetwork undoes attachNetwork, logging failures. It runs as soon
// as the task's process has exited (Wait, Shutdown, Terminate), not only
// at Remove: the manager frees a task's addresses once its state is
// final, and an exited task's namespace must not keep answering for an
// address handed to another task (hosts would then reset connections
// meant for the new holder). The namespace itself stays until Remove.
// Idempotent.
func (c *Controller) detachNetwork() {
	n := c.e.cfg.Network
	if n == nil || c.task.GetSpec().NetworkMode() == api.NetworkHost {
		return
	}
	ctx, cancel := context.WithTimeout(c.nsContext(), cleanupTimeout)
	defer cancel()
	if err := n.Detach(ctx, c.task, c.e.NetNSPath(c.id)); err != nil {
		c.e.log.Warn("detach task from its networks", "task", c.id, "err", err)
	}
}

// nsContext is the context of clean-ups that must run even when the
// call's context has ended (the client adds its default namespace).
func (c *Controller) nsContext() context.Context { return context.Background() }

// Start implements runtime.Controller: it creates the container's task,
// its output captured in Executor.LogPath (see logs.go), and starts it. A task that
// exists already is started if it was only created, and left alone
// otherwise (running or exited: a task ID never runs twice). When the
// task cannot be created or started, the container is deleted with its
// snapshot (containerd keeps a half-made one) and the error is permanent.
func (c *Controller) Start(ctx context.Context) error {
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	if err != nil {
		return classify(err, "load container "+c.id)
	}
	task, err := ctr.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := task.Status(ctx)
		if err != nil {
			return classify(err, "task status "+c.id)
		}
		if st.Status != client.Created {
			return nil
		}
		if err := c.attachLogs(ctx, ctr); err != nil {
			return err
		}
	case errdefs.IsNotFound(err):
		ioc, err := c.e.newTaskIO(c.id)
		if err != nil {
			return err
		}
		task, err = ctr.NewTask(ctx, ioc)
		if err != nil {
			if ctx.Err() != nil || errdefs.IsUnavailable(err) {
				return classify(err, "create task "+c.id)
			}
			c.deleteFailed(ctr, nil)
			return fmt.Errorf("create task %s: %w", c.id, err)
		}
		c.e.taskStarted(c.id, task)
	default:
		return classify(err, "load task "+c.id)
	}
	if err := task.Start(ctx); err != nil {
		if ctx.Err() != nil || errdefs.IsUnavailable(err) {
			return classify(err, "start task "+c.id)
		}
		c.deleteFailed(ctr, task)
		return fmt.Errorf("start task %s: %w", c.id, err)
	}
	return nil
}

// deleteFailed deletes the task (if any) and container of a failed
// start.
func (c *Controller) deleteFailed(ctr client.Container, task client.Task) {
	ctx, cancel := context.WithTimeout(c.nsContext(), cleanupTimeout)
	defer cancel()
	if task != nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			c.e.log.Warn("delete task of failed start", "task", c.id, "err", err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		c.e.log.Warn("delete container of failed start", "task", c.id, "err", err)
	}
	if err := c.e.closeTaskLog(c.id); err != nil {
		c.e.log.Warn("close log of failed start", "task", c.id, "err", err)
	}
}

// attachLogs captures the output of the container's existing task again
// (after an agent restart). A task that has exited has nothing more to
// say and is left alone.
func (c *Controller) attachLogs(ctx context.Context, ctr client.Container) error {
	if err := c.e.attachTaskIO(ctx, c.id, ctr.Task); err != nil {
		return classify(err, "attach to the output of task "+c.id)
	}
	return nil
}

// loadTask returns the container's task; ErrContainerGone (wrapped) when
// there is no container or no task.
func (c *Controller) loadTask(ctx context.Context) (client.Container, client.Task, error) {
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	if err != nil {
		return nil, nil, classify(err, "load container "+c.id)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return ctr, nil, classify(err, "load task "+c.id)
	}
	return ctr, task, nil
}

// Wait implements runtime.Controller: the exit code of the task's
// process, once it exits. A process killed by the kernel for exceeding
// its memory limit gives 137 and an error wrapping ErrOOMKilled. No
// container or task wraps runtime.ErrContainerGone. A task with a health
// check is probed meanwhile (see Health): once it is unhealthy, Wait
// fails with an error wrapping runtime.ErrUnhealthy that gives the
// reason, and leaves the task running for the caller to stop.
func (c *Controller) Wait(ctx context.Context) (int, error) {
	// A call cut by ctx fails with ctx.Err() itself, not the RPC's
	// status for it: callers tell an interrupted wait by that.
	ctr, task, err := c.loadTask(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := task.Wait(wctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, classify(err, "wait task "+c.id)
	}
	mon, err := c.monitor(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, runtime.ErrTemporary) {
			return 0, err
		}
		c.e.log.Warn("no health check for the task", "task", c.id, "err", err)
	}
	var es client.ExitStatus
	for done := false; !done; {
		var changed <-chan struct{}
		if mon != nil {
			state, reason, _, next := mon.snapshot()
			if state == runtime.HealthUnhealthy {
				return 0, fmt.Errorf("%w: %s", runtime.ErrUnhealthy, reason)
			}
			changed = next
		}
		select {
		case es = <-ch:
			done = true
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err := es.Error(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, classify(err, "wait task "+c.id)
	}
	c.detachNetwork() // exited: see detachNetwork
	code := int(es.ExitCode())
	if code == 137 {
		if spec, err := ctr.Spec(ctx); err == nil && spec.Linux != nil && oomKilled(spec.Linux.CgroupsPath) {
			return code, fmt.Errorf("exit code 137: %w", ErrOOMKilled)
		}
	}
	return code, nil
}

// Shutdown implements runtime.Controller: the spec's stop signal
// (default SIGTERM), then, after the stop grace period (default 10 s)
// or when ctx ends, SIGKILL. It returns once the process has exited; a
// task that is not running (never started, exited, removed) is fine.
func (c *Controller) Shutdown(ctx context.Context) error {
	sig := syscall.SIGTERM
	if s := c.task.GetSpec().GetContainer().GetStopSignal(); s != "" {
		parsed, err := signal.ParseSignal(s)
		if err != nil {
			return fmt.Errorf("stop signal of task %s: %w", c.id, err)
		}
		sig = parsed
	}
	grace := DefaultStopGracePeriod
	if g := c.task.GetSpec().GetContainer().StopGracePeriod; g != nil {
		grace = time.Duration(*g)
	}
	return c.stop(ctx, sig, grace)
}

// Terminate implements runtime.Controller: SIGKILL, returning once the
// process has exited.
func (c *Controller) Terminate(ctx context.Context) error {
	return c.stop(ctx, syscall.SIGKILL, 0)
}

// stop sends sig and waits for the exit; after grace (if sig is not
// already SIGKILL) it sends SIGKILL and waits again. Once the process
// has exited, the task leaves its networks (detachNetwork).
func (c *Controller) stop(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	err := c.signalAndWait(ctx, sig, grace)
	if err == nil {
		c.detachNetwork() // exited: see detachNetwork
	}
	return err
}

// signalAndWait is stop without the network release.
func (c *Controller) signalAndWait(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	c.haltHealth(false)
	_, task, err := c.loadTask(ctx)
	if errors.Is(err, runtime.ErrContainerGone) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return classify(err, "task status "+c.id)
	}
	if st.Status == client.Stopped {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := task.Wait(wctx)
	if err != nil {
		return classify(err, "wait task "+c.id)
	}
	if st.Status == client.Created && sig != syscall.SIGKILL {
		sig = syscall.SIGKILL // its process never ran the program
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return classify(err, fmt.Sprintf("signal %v to task %s", sig, c.id))
	}
	if sig != syscall.SIGKILL {
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-ch:
			return nil
		case <-timer.C:
			c.e.log.Info("task ignored its stop signal: killing it", "task", c.id, "signal", sig, "grace", grace)
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			return classify(err, "kill task "+c.id)
		}
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove implements runtime.Controller: it deletes the task (killing
// its process if it still runs), the container with its snapshot, the
// network namespace and the log files (the output capture stops). Missing pieces are skipped; named
// volumes are kept.
func (c *Controller) Remove(ctx context.Context) error {
	c.haltHealth(true)
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	switch {
	case err == nil:
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				return classify(err, "delete task "+c.id)
			}
		} else if !errdefs.IsNotFound(err) {
			return classify(err, "load task "+c.id)
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return classify(err, "delete container "+c.id)
		}
	case errdefs.IsNotFound(err):
		// A snapshot may outlive a container deleted without cleanup.
		if err := c.e.client.SnapshotService(snapshotter).Remove(ctx, c.id); err != nil && !errdefs.IsNotFound(err) {
			return classify(err, "remove snapshot "+c.id)
		}
	default:
		return classify(err, "load container "+c.id)
	}
	c.detachNetwork()
	if err := removeNetNS(c.e.NetNSPath(c.id)); err != nil {
		return err
	}
	if err := c.e.closeTaskLog(c.id); err != nil {
		c.e.log.Warn("close log", "task", c.id, "err", err)
	}
	for _, p := range []string{c.e.LogPath(c.id), c.e.LogPath(c.id) + ".1"} {
		if err := removeFile(p); err != nil {
			return fmt.Errorf("remove log of task %s: %w", c.id, err)
		}
	}
	return nil
}

// Reattach implements runtime.Reattacher. containerd keeps its own
// records, so it only checks them (and remembers the last health, so
// that a task that was healthy starts its probes healthy) and, for a task
// that has not exited, captures its output again: the
// container is looked up by task ID (nothing is started or created); a
// missing one is logged, and Wait will then fail with runtime.ErrContainerGone. An unreachable daemon
// wraps runtime.ErrTemporary.
func (c *Controller) Reattach(ctx context.Context, last *api.TaskStatus) error {
	c.lastHealth = last.GetHealth()
	ctr, task, err := c.loadTask(ctx)
	if errors.Is(err, runtime.ErrContainerGone) {
		if last.GetState() >= api.TaskState_TASK_STATE_STARTING {
			c.e.log.Warn("task's container did not survive the restart", "task", c.id, "last", last.GetState(), "err", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if st, err := task.Status(ctx); err != nil {
		return classify(err, "task status "+c.id)
	} else if st.Status != client.Stopped {
		if err := c.attachLogs(ctx, ctr); err != nil {
			c.e.log.Warn("task output is no longer captured", "task", c.id, "err", err)
		}
		// The DNS server inside the container lived in the previous
		// agent: attach again (interfaces and rules are kept as they are).
		if _, err := c.attachNetwork(ctx); err != nil {
			c.e.log.Warn("task's network not attached again", "task", c.id, "err", err)
		}
	} else {
		c.detachNetwork() // it exited while no agent ran: see detachNetwork
	}
	c.e.log.Info("reattached to task", "task", c.id, "pid", task.Pid())
	return nil
}

// ContainerStatus implements runtime.ContainerStatuser: the container ID
// and the PID of the task's process (0 when it has no task).
func (c *Controller) ContainerStatus(ctx context.Context) (*api.ContainerStatus, error) {
	_, task, err := c.loadTask(ctx)
	if errors.Is(err, runtime.ErrContainerGone) {
		return &api.ContainerStatus{ContainerId: c.id}, nil
	}
	if err != nil {
		return nil, err
	}
	return &api.ContainerStatus{ContainerId: c.id, Pid: int32(task.Pid())}, nil
}

// Close implements runtime.Controller: it stops the health probes, if
// any (the container is left alone).
func (c *Controller) Close() error {
	c.haltHealth(true)
	return nil
}
