package main

// Parsers for the structured values of service flags: published ports,
// mounts, networks, secret and config references, ulimits and placement.
// Short forms follow docker ("8080:80/udp"); long forms are
// comma-separated KEY=VALUE lists ("published=8080,target=80,mode=host").

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// publishUsage says what --publish accepts.
const publishUsage = "expected [PUBLISHED:]TARGET[/PROTOCOL] (examples: 8080:80, 53:53/udp) or published=PORT,target=PORT[,protocol=tcp|udp][,mode=ingress|host]"

// publishShort is "[PUBLISHED:]TARGET[/PROTOCOL]".
var publishShort = regexp.MustCompile(`^(?:(\d+):)?(\d+)(?:/([a-zA-Z]+))?$`)

// parsePublish reads one --publish value.
func parsePublish(s string) (*api.PortConfig, error) {
	const flag = "publish"
	p := &api.PortConfig{}
	if !isLongForm(s) {
		m := publishShort.FindStringSubmatch(s)
		if m == nil {
			if strings.Contains(s, "-") {
				return nil, flagError(flag, s, "port ranges are not supported; publish each port")
			}
			return nil, flagError(flag, s, publishUsage)
		}
		var err error
		if m[1] != "" {
			if p.PublishedPort, err = parsePort(flag, s, "published", m[1]); err != nil {
				return nil, err
			}
		}
		if p.TargetPort, err = parsePort(flag, s, "target", m[2]); err != nil {
			return nil, err
		}
		if m[3] != "" {
			if p.Protocol, err = parseProtocol(s, m[3]); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	fields, err := parseFields(flag, s)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		switch f.key {
		case "published":
			p.PublishedPort, err = parsePort(flag, s, f.key, f.value)
		case "target":
			p.TargetPort, err = parsePort(flag, s, f.key, f.value)
		case "protocol":
			p.Protocol, err = parseProtocol(s, f.value)
		case "mode":
			p.PublishMode, err = parseEnum(flag, f.value, []string{"ingress", "host"},
				[]api.PortConfig_PublishMode{api.PortConfig_PUBLISH_MODE_INGRESS, api.PortConfig_PUBLISH_MODE_HOST})
			if err != nil {
				err = flagError(flag, s, "mode must be ingress or host")
			}
		default:
			err = flagError(flag, s, "unknown key %q (valid keys: published, target, protocol, mode)", f.key)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.TargetPort == 0 {
		return nil, flagError(flag, s, "target=PORT is required")
	}
	return p, nil
}

// parsePort reads a port number from 1 to 65535.
func parsePort(flag, s, which, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, flagError(flag, s, "%s port %q is not a number from 1 to 65535", which, v)
	}
	return uint32(n), nil
}

// parseProtocol reads tcp or udp.
func parseProtocol(s, v string) (api.PortConfig_Protocol, error) {
	switch strings.ToLower(v) {
	case "tcp":
		return api.PortConfig_PROTOCOL_TCP, nil
	case "udp":
		return api.PortConfig_PROTOCOL_UDP, nil
	}
	return 0, flagError("publish", s, "protocol %q is not tcp or udp", v)
}

// mountUsage says what --mount accepts.
const mountUsage = "valid keys: type, source, target, readonly, tmpfs-size, tmpfs-mode"

// parseMount reads one --mount value:
// type=volume|bind|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..][,tmpfs-mode=..].
func parseMount(s string) (*api.Mount, error) {
	const flag = "mount"
	fields, err := parseFields(flag, s)
	if err != nil {
		return nil, err
	}
	m := &api.Mount{}
	var sizeGiven, modeGiven bool
	for _, f := range fields {
		if !f.hasValue && f.key != "readonly" && f.key != "ro" {
			return nil, flagError(flag, s, "%s needs a value (%s=...)", f.key, f.key)
		}
		switch f.key {
		case "type":
			m.Type, err = parseEnum(flag, f.value, []string{"volume", "bind", "tmpfs"},
				[]api.Mount_Type{api.Mount_TYPE_VOLUME, api.Mount_TYPE_BIND, api.Mount_TYPE_TMPFS})
			if err != nil {
				err = flagError(flag, s, "type must be volume, bind or tmpfs")
			}
		case "source", "src":
			m.Source = f.value
		case "target", "destination", "dst":
			m.Target = f.value
		case "readonly", "ro":
			m.ReadOnly, err = parseBoolField(flag, s, f)
		case "tmpfs-size":
			sizeGiven = true
			if m.TmpfsSizeBytes, err = parseMemory(flag, f.value); err != nil {
				err = flagError(flag, s, "tmpfs-size %q is not a memory size (examples: 64m, 1g)", f.value)
			}
		case "tmpfs-mode":
			modeGiven = true
			m.TmpfsMode, err = parseFileMode(flag, s, f.value)
		default:
			err = flagError(flag, s, "unknown key %q (%s)", f.key, mountUsage)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case m.Target == "":
		return nil, flagError(flag, s, "target=PATH is required")
	case !strings.HasPrefix(m.Target, "/"):
		return nil, flagError(flag, s, "target %q must be an absolute path", m.Target)
	case m.Type == api.Mount_TYPE_BIND && !strings.HasPrefix(m.Source, "/"):
		return nil, flagError(flag, s, "a bind mount needs source=PATH, an absolute path on the node")
	case m.Type == api.Mount_TYPE_TMPFS && m.Source != "":
		return nil, flagError(flag, s, "a tmpfs mount has no source")
	case m.Type != api.Mount_TYPE_TMPFS && (sizeGiven || modeGiven):
		return nil, flagError(flag, s, "tmpfs-size and tmpfs-mode need type=tmpfs")
	}
	return m, nil
}

// parseNetwork reads one --network value: NAME, or name=NAME[,alias=A]...
func parseNetwork(s string) (*api.NetworkAttachmentConfig, error) {
	const flag = "network"
	if !isLongForm(s) {
		if s == "" || strings.Contains(s, ",") {
			return nil, flagError(flag, s, "expected a network NAME or name=NAME,alias=ALIAS")
		}
		return &api.NetworkAttachmentConfig{Target: s}, nil
	}
	fields, err := parseFields(flag, s)
	if err != nil {
		return nil, err
	}
	n := &api.NetworkAttachmentConfig{}
	for _, f := range fields {
		switch {
		case f.value == "":
			return nil, flagError(flag, s, "%s needs a value", f.key)
		case f.key == "name" || f.key == "target":
			n.Target = f.value
		case f.key == "alias":
			n.Aliases = append(n.Aliases, f.value)
		default:
			return nil, flagError(flag, s, "unknown key %q (valid keys: name, alias)", f.key)
		}
	}
	if n.Target == "" {
		return nil, flagError(flag, s, "name=NETWORK is required")
	}
	return n, nil
}

// fileRef is a parsed --secret or --config value.
type fileRef struct {
	source string
	target *api.FileTarget
}

// parseFileRef reads one --secret or --config value: NAME, or
// source=NAME[,target=FILE][,uid=..][,gid=..][,mode=0444]. Without a
// target the file is named after the source.
func parseFileRef(flag, s string) (fileRef, error) {
	if !isLongForm(s) {
		if s == "" || strings.Contains(s, ",") {
			return fileRef{}, flagError(flag, s, "expected a %s NAME or source=NAME,target=FILE", flag)
		}
		return fileRef{source: s, target: &api.FileTarget{Name: s}}, nil
	}
	fields, err := parseFields(flag, s)
	if err != nil {
		return fileRef{}, err
	}
	r := fileRef{target: &api.FileTarget{}}
	for _, f := range fields {
		switch {
		case f.value == "":
			return fileRef{}, flagError(flag, s, "%s needs a value", f.key)
		case f.key == "source" || f.key == "src":
			r.source = f.value
		case f.key == "target":
			r.target.Name = f.value
		case f.key == "uid":
			r.target.Uid = f.value
		case f.key == "gid":
			r.target.Gid = f.value
		case f.key == "mode":
			if r.target.Mode, err = parseFileMode(flag, s, f.value); err != nil {
				return fileRef{}, err
			}
		default:
			return fileRef{}, flagError(flag, s, "unknown key %q (valid keys: source, target, uid, gid, mode)", f.key)
		}
	}
	if r.source == "" {
		return fileRef{}, flagError(flag, s, "source=NAME is required")
	}
	if r.target.Name == "" {
		r.target.Name = r.source
	}
	return r, nil
}

// ulimitNames are the resource limits a container may set.
var ulimitNames = []string{"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// parseUlimit reads NAME=SOFT[:HARD]; a single number sets both.
func parseUlimit(s string) (*api.Ulimit, error) {
	const flag = "ulimit"
	name, limits, ok := strings.Cut(s, "=")
	if !ok {
		return nil, flagError(flag, s, "expected NAME=SOFT[:HARD] (example: nofile=1024:2048)")
	}
	known := false
	for _, n := range ulimitNames {
		known = known || n == name
	}
	if !known {
		return nil, flagError(flag, s, "unknown limit %q (valid: %s)", name, strings.Join(ulimitNames, ", "))
	}
	softS, hardS, hasHard := strings.Cut(limits, ":")
	if !hasHard {
		hardS = softS
	}
	soft, err1 := strconv.ParseInt(softS, 10, 64)
	hard, err2 := strconv.ParseInt(hardS, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, flagError(flag, s, "limits must be whole numbers (example: nofile=1024:2048)")
	}
	if soft > hard && hard >= 0 {
		return nil, flagError(flag, s, "the soft limit must not be above the hard limit")
	}
	return &api.Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}

// parseConstraint checks ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE.
func parseConstraint(s string) (string, error) {
	for _, op := range []string{"==", "!="} {
		if k, v, ok := strings.Cut(s, op); ok && strings.TrimSpace(k) != "" && strings.TrimSpace(v) != "" {
			return s, nil
		}
	}
	return "", flagError("constraint", s, "expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE (examples: node.role==manager, node.labels.zone!=eu)")
}

// parsePlacementPref reads spread=ATTRIBUTE.
func parsePlacementPref(s string) (*api.PlacementPreference, error) {
	strategy, attr, ok := strings.Cut(s, "=")
	if !ok || strategy != "spread" || attr == "" {
		return nil, flagError("placement-pref", s, "expected spread=ATTRIBUTE (example: spread=node.labels.zone)")
	}
	return &api.PlacementPreference{Spread: attr}, nil
}
