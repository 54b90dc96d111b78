package overlay

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoalhq/shoal/overlay/ingress"
	"github.com/shoalhq/shoal/overlay/sandbox"
)

// defaultGCInterval is how often the host looks for devices no task
// uses, unless Config.GCInterval says otherwise.
const defaultGCInterval = 30 * time.Second

// collectGarbage removes the task interfaces and network devices that no
// attached task uses: what a crashed agent, or containers removed while
// it was down, left behind. A device is removed only when it was unused
// at two rounds in a row, so that one being made by an Attach in
// progress is never taken.
func (h *Host) collectGarbage() {
	defer h.wg.Done()
	every := h.cfg.GCInterval
	if every <= 0 {
		every = defaultGCInterval
	}
	suspects := map[string]bool{}
	for {
		select {
		case <-h.done:
			return
		case <-time.After(every):
		}
		next, err := h.unused()
		if err != nil {
			h.cfg.Logger.Warn("overlay: look for unused devices", "err", err)
			continue
		}
		for _, name := range next {
			if suspects[name] {
				h.removeDevice(name)
			}
		}
		suspects = map[string]bool{}
		for _, name := range next {
			suspects[name] = true
		}
	}
}

// unused lists the task veths ("shv…") and networks ("vni:N") that no
// attached task uses now.
func (h *Host) unused() ([]string, error) {
	veths, err := sandbox.List("")
	if err != nil {
		return nil, err
	}
	vnis, err := h.vx.Networks()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	used := map[string]bool{}
	usedVNI := map[uint32]bool{}
	for _, l := range h.tasks {
		for _, a := range l.task.GetNetworks() {
			used[sandbox.IfNameFor(l.task.GetId(), a.GetNetworkId())] = true
			if n := h.networks[a.GetNetworkId()]; n != nil {
				usedVNI[n.GetVni()] = true
			}
		}
	}
	if h.ingress != nil {
		usedVNI[h.ingress.GetVni()] = true // every node carries the mesh
	}
	h.mu.Unlock()
	// The bridge network's veths share the prefix; it reconciles its own.
	brName := h.bridge.Config().Bridge
	for taskID := range h.bridge.Tasks() {
		used[sandbox.IfNameFor(taskID, brName)] = true
	}
	var out []string
	for _, v := range veths {
		if !used[v] {
			out = append(out, v)
		}
	}
	for _, vni := range vnis {
		if !usedVNI[vni] {
			out = append(out, vniKey(vni))
		}
	}
	slices.Sort(out)
	return out, nil
}

// removeDevice removes one unused veth or network.
func (h *Host) removeDevice(name string) {
	var err error
	if vni, ok := parseVNIKey(name); ok {
		err = h.vx.RemoveNetwork(vni)
	} else {
		err = sandbox.Detach("", name)
	}
	if err != nil {
		h.cfg.Logger.Warn("overlay: remove unused device", "device", name, "err", err)
		return
	}
	h.cfg.Logger.Info("overlay: removed a device no task uses", "device", name)
}

// Cleanup removes every interface and network device of the overlay on
// this host, whether tasks use them or not: for a node taken out of
// service (`shoal daemon --cleanup`). Running containers lose their
// overlay interfaces.
func (h *Host) Cleanup() error {
	var errs []error
	veths, err := sandbox.List("")
	errs = append(errs, err)
	for _, v := range veths {
		errs = append(errs, sandbox.Detach("", v))
	}
	vnis, err := h.vx.Networks()
	errs = append(errs, err)
	for _, vni := range vnis {
		errs = append(errs, h.vx.RemoveNetwork(vni))
	}
	errs = append(errs, h.bridge.Remove(), ingress.RemoveHost(selfNetNS))
	return errors.Join(errs...)
}

func vniKey(vni uint32) string { return "vni:" + strconv.FormatUint(uint64(vni), 10) }

func parseVNIKey(s string) (uint32, bool) {
	rest, ok := strings.CutPrefix(s, "vni:")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(rest, 10, 32)
	return uint32(v), err == nil
}
