package controlapi

import (
	"context"
	"fmt"
	"sort"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// CreateService validates the spec (see ValidateServiceSpec) and stores a
// new service with a fresh ID (store.NewID), spec version 1 and the spec
// exactly as given. A name already in use fails with AlreadyExists and
// writes nothing. The orchestrator creates the tasks afterwards.
func (s *Server) CreateService(ctx context.Context, req *api.CreateServiceRequest) (*api.CreateServiceResponse, error) {
	spec := req.GetSpec()
	if err := ValidateServiceSpec(spec); err != nil {
		return nil, ToStatus(err)
	}
	name := spec.GetAnnotations().GetName()
	id := store.NewID()
	var taken []*api.Service
	s.store.View(func(tx store.ReadTx) { taken = tx.FindServices(store.ByName(name)) })
	if len(taken) > 0 { // fail before asking the registry
		return nil, nameTaken(name, taken[0].GetId())
	}
	digest, warning := s.imageDigest(ctx, spec.GetTask().GetContainer().GetImage(), spec.GetTask().GetContainer().GetRegistryAuth())
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if taken := tx.FindServices(store.ByName(name)); len(taken) > 0 {
			return nameTaken(name, taken[0].GetId())
		}
		stored := clone(spec)
		if err := resolveServiceNetworks(tx, stored); err != nil {
			return err
		}
		if err := checkServiceNetworks(tx, "", stored); err != nil {
			return err
		}
		return tx.CreateService(&api.Service{
			Id:          id,
			Meta:        &api.Meta{},
			Spec:        stored,
			SpecVersion: 1,
			ImageDigest: digest,
		})
	})
	if err != nil {
		return nil, writeErr("create service "+name, err)
	}
	var svc *api.Service
	s.store.View(func(tx store.ReadTx) { svc = tx.GetService(id) })
	if svc == nil {
		return nil, notFoundf("service %s (%s) not found: it was removed right after being created", name, id)
	}
	return &api.CreateServiceResponse{Service: redactService(svc), Warnings: warnings(warning)}, nil
}

// nameTaken is the AlreadyExists status for a service name in use.
func nameTaken(name, holder string) error {
	return ToStatus(fmt.Errorf("service name %q is already in use by service %s: choose another name, or update that service: %w",
		name, holder, store.ErrNameConflict))
}

// GetService returns the service that service_id designates: an exact
// ID, else an exact name, else a unique ID prefix. NotFound when nothing
// matches, InvalidArgument when several do.
func (s *Server) GetService(ctx context.Context, req *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	var svc *api.Service
	var err error
	s.store.View(func(tx store.ReadTx) {
		svc, err = serviceFinder(tx).resolve(req.GetServiceId())
	})
	if err != nil {
		return nil, ToStatus(err)
	}
	return &api.GetServiceResponse{Service: redactService(svc)}, nil
}

// ListServices returns the services, sorted by ID, whose name is one of
// names (exact match; all when empty) and whose spec labels match every
// labels filter (KEY or KEY=VALUE), with a ReplicaCount per returned
// service ID:
//   - running: tasks whose status is RUNNING and whose desired state is
//     RUNNING (or COMPLETE, which job tasks may carry);
//   - desired: replicas (replicated), the tasks with desired state RUNNING
//     (global), total_completions (replicated-job), the tasks with desired
//     state RUNNING or COMPLETE (global-job);
//   - completed: tasks whose status is COMPLETE.
func (s *Server) ListServices(ctx context.Context, req *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	filters, err := parseLabelFilters(req.GetLabels())
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &api.ListServicesResponse{Counts: map[string]*api.ReplicaCount{}}
	s.store.View(func(tx store.ReadTx) {
		var services []*api.Service
		if len(req.GetNames()) == 0 {
			services = tx.FindServices(store.All())
		} else {
			seen := map[string]bool{}
			for _, name := range req.GetNames() {
				if !seen[name] {
					seen[name] = true
					services = append(services, tx.FindServices(store.ByName(name))...)
				}
			}
			sort.Slice(services, func(i, j int) bool { return services[i].GetId() < services[j].GetId() })
		}
		for _, svc := range services {
			if !matchLabels(svc.GetSpec().GetAnnotations().GetLabels(), filters) {
				continue
			}
			resp.Services = append(resp.Services, redactService(svc))
			resp.Counts[svc.GetId()] = replicaCount(svc, tx.FindTasks(store.ByServiceID(svc.GetId())))
		}
	})
	return resp, nil
}

// replicaCount counts a service's tasks as ListServices documents.
func replicaCount(svc *api.Service, tasks []*api.Task) *api.ReplicaCount {
	c := &api.ReplicaCount{}
	var desiredRunning, desiredRunOrComplete uint64
	for _, t := range tasks {
		desired := t.GetDesiredState()
		live := desired == api.TaskState_TASK_STATE_RUNNING || desired == api.TaskState_TASK_STATE_COMPLETE
		// A dead task whose restart was refused keeps desired RUNNING (the
		// orchestrator's marker that the slot stays filled): not wanted.
		if desired == api.TaskState_TASK_STATE_RUNNING && t.GetStatus().GetState() <= api.TaskState_TASK_STATE_RUNNING {
			desiredRunning++
		}
		if live {
			desiredRunOrComplete++
		}
		switch t.GetStatus().GetState() {
		case api.TaskState_TASK_STATE_RUNNING:
			if live {
				c.Running++
			}
		case api.TaskState_TASK_STATE_COMPLETE:
			c.Completed++
		}
	}
	switch m := svc.GetSpec().GetMode().GetMode().(type) {
	case *api.ServiceMode_Replicated:
		c.Desired = m.Replicated.GetReplicas()
	case *api.ServiceMode_Global:
		c.Desired = desiredRunning
	case *api.ServiceMode_ReplicatedJob:
		c.Desired = m.ReplicatedJob.GetTotalCompletions()
	case *api.ServiceMode_GlobalJob:
		c.Desired = desiredRunOrComplete
	}
	return c
}

// UpdateService replaces a service's spec. version must be the service's
// current Meta.Version. The new spec is validated and stored as given;
// the old one becomes previous_spec and spec_version goes up by one. The
// name cannot change, nor the kind of mode (replicated, global,
// replicated-job, global-job): both are InvalidArgument. With rollback
// set, the request's spec is ignored and the service's previous_spec
// becomes its spec (and the current spec its previous_spec); without a
// previous spec the rollback fails with FailedPrecondition. The
// orchestrator then replaces the tasks. A spec whose registry_auth has
// the stored server and username but an empty password keeps the stored
// password, so a spec read back from the API (password blanked) can be
// sent again unchanged.
func (s *Server) UpdateService(ctx context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	if !req.GetRollback() {
		if err := ValidateServiceSpec(req.GetSpec()); err != nil {
			return nil, ToStatus(err)
		}
	}
	ref := req.GetServiceId()
	image, digest, warning, resolved := s.updatedImageDigest(ctx, ref, req.GetRollback(), req.GetSpec())
	var id string
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := serviceFinder(tx).resolve(ref)
		if err != nil {
			return err
		}
		id = cur.GetId()
		if err := checkVersion("service", ref, cur.GetMeta().GetVersion(), req.GetVersion()); err != nil {
			return err
		}
		svc := clone(cur)
		if req.GetRollback() {
			if cur.GetPreviousSpec() == nil {
				return preconditionf("service %s has no previous spec to roll back to: it has not been updated since it was created", ref)
			}
			svc.Spec, svc.PreviousSpec = svc.PreviousSpec, svc.Spec
		} else {
			if err := checkSpecChange(cur.GetSpec(), req.GetSpec()); err != nil {
				return err
			}
			svc.PreviousSpec = svc.Spec
			svc.Spec = clone(req.GetSpec())
			if err := resolveServiceNetworks(tx, svc.Spec); err != nil {
				return err
			}
			if err := checkServiceNetworks(tx, svc.GetId(), svc.Spec); err != nil {
				return err
			}
			keepRegistryPassword(cur.GetSpec(), svc.Spec)
		}
		svc.SpecVersion++
		if resolved && svc.GetSpec().GetTask().GetContainer().GetImage() == image {
			svc.ImageDigest = digest
		} else {
			svc.ImageDigest = "" // the service changed meanwhile: its version check fails anyway
		}
		return tx.UpdateService(svc)
	})
	if err != nil {
		return nil, writeErr("update service "+ref, err)
	}
	var svc *api.Service
	s.store.View(func(tx store.ReadTx) { svc = tx.GetService(id) })
	if svc == nil {
		return nil, notFoundf("service %s not found (it was removed after the update)", ref)
	}
	return &api.UpdateServiceResponse{Service: redactService(svc), Warnings: warnings(warning)}, nil
}

// warnings is the list of the non-empty ones of ws.
func warnings(ws ...string) []string {
	var out []string
	for _, w := range ws {
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// checkSpecChange refuses the changes a service update cannot make.
func checkSpecChange(old, new *api.ServiceSpec) error {
	if o, n := old.GetAnnotations().GetName(), new.GetAnnotations().GetName(); o != n {
		return invalidf("service names cannot be changed: the service is %q, the spec says %q; to rename, create a new service and remove this one", o, n)
	}
	if o, n := modeName(old.GetMode()), modeName(new.GetMode()); o != n {
		return invalidf("invalid spec: mode: a service's mode cannot change from %s to %s: create a new service and remove this one", o, n)
	}
	return nil
}

// modeName names a service mode as users write it.
func modeName(m *api.ServiceMode) string {
	switch m.GetMode().(type) {
	case *api.ServiceMode_Replicated:
		return "replicated"
	case *api.ServiceMode_Global:
		return "global"
	case *api.ServiceMode_ReplicatedJob:
		return "replicated-job"
	case *api.ServiceMode_GlobalJob:
		return "global-job"
	}
	return "none"
}

// RemoveService deletes a service and, in the same transaction, sets
// desired state REMOVE on each of its tasks whose desired state is below
// REMOVE; the orchestrator stops and reaps them.
func (s *Server) RemoveService(ctx context.Context, req *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	ref := req.GetServiceId()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		svc, err := serviceFinder(tx).resolve(ref)
		if err != nil {
			return err
		}
		if err := tx.DeleteService(svc.GetId()); err != nil {
			return err
		}
		for _, t := range tx.FindTasks(store.ByServiceID(svc.GetId())) {
			if t.GetDesiredState() >= api.TaskState_TASK_STATE_REMOVE {
				continue
			}
			t = clone(t)
			t.DesiredState = api.TaskState_TASK_STATE_REMOVE
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, writeErr("remove service "+ref, err)
	}
	return &api.RemoveServiceResponse{}, nil
}
