package controlapi

import "github.com/shoalhq/shoal/proto/api"

// Registry credentials (ContainerSpec.registry_auth) are stored so the
// nodes can pull with them, but the control API never returns their
// password: every service and task it answers with goes through
// redactService or redactTask, which work on a clone of what the store
// holds.

// redactService returns a clone of svc whose spec and previous spec carry
// no registry password (registry_auth.password is ""). svc is not
// changed; nil gives nil.
func redactService(svc *api.Service) *api.Service {
	if svc == nil {
		return nil
	}
	out := clone(svc)
	redactContainer(out.GetSpec().GetTask().GetContainer())
	redactContainer(out.GetPreviousSpec().GetTask().GetContainer())
	return out
}

// redactTask returns a clone of t whose spec carries no registry
// password. t is not changed; nil gives nil.
func redactTask(t *api.Task) *api.Task {
	if t == nil {
		return nil
	}
	out := clone(t)
	redactContainer(out.GetSpec().GetContainer())
	return out
}

// redactContainer blanks the registry password of c in place (c must be
// a clone); nil is fine.
func redactContainer(c *api.ContainerSpec) {
	if a := c.GetRegistryAuth(); a != nil {
		a.Password = ""
	}
}

// keepRegistryPassword applies the round-trip rule of UpdateService: a
// new spec whose registry_auth names the same server and username as the
// current spec's, with an empty password, keeps the stored password (a
// spec read back from the API has it blanked). next must be a clone the
// caller owns; cur is not changed.
func keepRegistryPassword(cur, next *api.ServiceSpec) {
	old := cur.GetTask().GetContainer().GetRegistryAuth()
	neu := next.GetTask().GetContainer().GetRegistryAuth()
	if old == nil || neu == nil || neu.GetPassword() != "" {
		return
	}
	if neu.GetServerAddress() == old.GetServerAddress() && neu.GetUsername() == old.GetUsername() {
		neu.Password = old.GetPassword()
	}
}
