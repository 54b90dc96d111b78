package controlapi

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// maxCandidates caps how many matches an ambiguity message lists.
const maxCandidates = 10

// finder finds objects of one kind by a user's reference: an exact ID,
// an exact name, or a unique ID prefix, in that order. Names come before
// prefixes so that a service called "db" stays reachable by its name even
// when some ID happens to start with "db".
type finder[T proto.Message] struct {
	kind string // "node", "service"
	get  func(id string) T
	find func(by store.By) []T
	id   func(T) string
	name func(T) string
	// hint says how to disambiguate a name shared by several objects.
	nameHint string
}

// resolve returns the one object ref designates, or a NotFound or
// InvalidArgument (ambiguous) status.
func (f finder[T]) resolve(ref string) (T, error) {
	var zero T
	if ref == "" {
		return zero, invalidf("%s ID or name is required", f.kind)
	}
	if obj := f.get(ref); !isNil(obj) {
		return obj, nil
	}
	switch byName := f.find(store.ByName(ref)); len(byName) {
	case 0:
	case 1:
		return byName[0], nil
	default:
		return zero, invalidf("%s name %s is ambiguous: %s; %s",
			f.kind, ref, f.candidates(byName), f.nameHint)
	}
	switch byPrefix := f.find(store.ByIDPrefix(ref)); len(byPrefix) {
	case 0:
	case 1:
		return byPrefix[0], nil
	default:
		return zero, invalidf("%s prefix %s is ambiguous: %s; use more characters",
			f.kind, ref, f.candidates(byPrefix))
	}
	return zero, notFoundf("%s %s not found", f.kind, ref)
}

// candidates renders "ID (NAME), ID (NAME)" for an ambiguity message.
func (f finder[T]) candidates(objs []T) string {
	parts := make([]string, 0, min(len(objs), maxCandidates)+1)
	for i, o := range objs {
		if i == maxCandidates {
			parts = append(parts, fmt.Sprintf("and %d more", len(objs)-maxCandidates))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", f.id(o), f.name(o)))
	}
	return strings.Join(parts, ", ")
}

// isNil reports whether a proto message pointer is nil.
func isNil(m proto.Message) bool {
	return m == nil || !m.ProtoReflect().IsValid()
}

// nodeFinder finds nodes in tx.
func nodeFinder(tx store.ReadTx) finder[*api.Node] {
	return finder[*api.Node]{
		kind:     "node",
		get:      tx.GetNode,
		find:     tx.FindNodes,
		id:       (*api.Node).GetId,
		name:     nodeName,
		nameHint: "use the node ID",
	}
}

// serviceFinder finds services in tx.
func serviceFinder(tx store.ReadTx) finder[*api.Service] {
	return finder[*api.Service]{
		kind:     "service",
		get:      tx.GetService,
		find:     tx.FindServices,
		id:       (*api.Service).GetId,
		name:     func(s *api.Service) string { return s.GetSpec().GetAnnotations().GetName() },
		nameHint: "use the service ID",
	}
}

// nodeName is a node's name: its spec name, else its hostname.
func nodeName(n *api.Node) string {
	if name := n.GetSpec().GetAnnotations().GetName(); name != "" {
		return name
	}
	return n.GetDescription().GetHostname()
}

// clone returns a deep copy of a store object.
func clone[T proto.Message](m T) T {
	return proto.Clone(m).(T)
}

// parseLabelFilters parses KEY or KEY=VALUE filters. A filter with an
// empty key is refused.
func parseLabelFilters(filters []string) ([]labelFilter, error) {
	out := make([]labelFilter, 0, len(filters))
	for i, f := range filters {
		key, value, hasValue := strings.Cut(f, "=")
		if key == "" {
			return nil, invalidf("labels[%d]: %q has no key; write KEY or KEY=VALUE", i, f)
		}
		out = append(out, labelFilter{key: key, value: value, hasValue: hasValue})
	}
	return out, nil
}

// labelFilter is one KEY or KEY=VALUE filter.
type labelFilter struct {
	key, value string
	hasValue   bool
}

// matchLabels reports whether labels satisfy every filter.
func matchLabels(labels map[string]string, filters []labelFilter) bool {
	for _, f := range filters {
		v, ok := labels[f.key]
		if !ok || (f.hasValue && v != f.value) {
			return false
		}
	}
	return true
}
