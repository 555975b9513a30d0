package xds

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/resman-pbx/resman/config/confcheck"
)

// This file is the xds section of the config file: its keys, defaults and
// checks. Package config composes it into the file's Config; that only a
// main or standby node may have it is a rule across sections, in config.

// Config registers the active PBX to the media servers. Only on a main or
// standby node.
type Config struct {
	// Contact is the sip: URI the media servers send calls to. Required.
	Contact string `mapstructure:"contact"`
	// MDS lists the registrars, at least one. Not env-overridable.
	MDS []MDS `mapstructure:"mds"`
	// PeerContact is the peer node's own xds.contact: the node that becomes
	// Active removes it from the MDS once registered (a peer killed while
	// Active could not unregister). Optional, a sip: URI.
	PeerContact string `mapstructure:"peer_contact"`
	// SourceAddress is the local IP SIP requests go from (0.0.0.0 or ::
	// for whatever the routes pick). Default: the host of contact when it
	// is an IP of this host and not shared with the peer.
	SourceAddress string `mapstructure:"source_address"`
	// OutboundProxy is a sip: URI every request is sent through. Optional.
	OutboundProxy string `mapstructure:"outbound_proxy"`
	// TLSCAFile is an absolute path to a PEM file of the CAs of the MDS
	// reached over TLS. Default: the system's roots.
	TLSCAFile string `mapstructure:"tls_ca_file"`
	// UnregisterOnStop removes this node's bindings when resman stops. By
	// default they stay: stopping resman leaves the PBX receiving calls.
	UnregisterOnStop bool `mapstructure:"unregister_on_stop"`
	// ContactEpoch adds the node's epoch to the Contact it registers (a
	// resman-epoch parameter and a q-value derived from it), so that an
	// MDS that forks by q prefers the newest Active. Default: false.
	ContactEpoch bool `mapstructure:"contact_epoch"`
}

// MDS is one media server registrar.
type MDS struct {
	// Name is unique among media servers. Required.
	Name string `mapstructure:"name"`
	// Registrar is a sip: URI with a host. Required.
	Registrar string `mapstructure:"registrar"`
	// Transport is udp, tcp or tls. Default: udp.
	Transport string `mapstructure:"transport"`
	// TLSServerName is the name the MDS certificate must carry; only with
	// transport tls. Default: the host of registrar.
	TLSServerName string `mapstructure:"tls_server_name"`
	// User for digest authentication; optional.
	User string `mapstructure:"user"`
	// Password is secret; required when User is set.
	Password string `mapstructure:"password" secret:"true" secretkind:"password"`
	// Expires asked of the registrar, in seconds, 10 to 3600. Default: 120.
	Expires int `mapstructure:"expires"`
}

// ApplyDefaults fills the section's defaults for the keys given reports
// absent.
func (x *Config) ApplyDefaults(given confcheck.Given) {
	for i := range x.MDS {
		m := &x.MDS[i]
		key := fmt.Sprintf("xds.mds[%d]", i)
		confcheck.Default(given, key+".transport", &m.Transport, "udp")
		confcheck.Default(given, key+".expires", &m.Expires, 120)
	}
}

// plainSIP accepts a sip: URI with a host (not sips:).
func plainSIP(s string) bool {
	return confcheck.ValidSIP(s) && !strings.HasPrefix(s, "sips:")
}

// Validate checks the section, defaults filled, and records its problems
// in ps.
func (x *Config) Validate(ps *confcheck.Problems) {
	if x.Contact == "" {
		ps.Add("xds.contact", "required: the sip: URI media servers send calls to, like sip:xivo@10.0.0.1:5060")
	} else if !plainSIP(x.Contact) {
		ps.Add("xds.contact", "must be a sip: URI with a host, like sip:xivo@10.0.0.1:5060, got %q", x.Contact)
	}
	if x.PeerContact != "" && !plainSIP(x.PeerContact) {
		ps.Add("xds.peer_contact", "must be a sip: URI with a host, the peer node's xds.contact, like sip:xivo@10.0.0.2:5060, got %q", x.PeerContact)
	}
	if x.SourceAddress != "" && net.ParseIP(strings.Trim(x.SourceAddress, "[]")) == nil {
		ps.Add("xds.source_address", "must be an IP address of this host (or 0.0.0.0 for the routes' choice), like 10.0.0.1, got %q", x.SourceAddress)
	}
	if x.OutboundProxy != "" && !plainSIP(x.OutboundProxy) {
		ps.Add("xds.outbound_proxy", "must be a sip: URI with a host, like sip:10.0.0.5:5060, got %q", x.OutboundProxy)
	}
	if x.TLSCAFile != "" && !filepath.IsAbs(x.TLSCAFile) {
		ps.Add("xds.tls_ca_file", "must be an absolute path, like /etc/resman/mds-ca.pem, got %q", x.TLSCAFile)
	}
	if len(x.MDS) == 0 {
		ps.Add("xds.mds", "list at least one media server (name, registrar)")
	}
	seen := map[string]int{}
	for i, m := range x.MDS {
		key := fmt.Sprintf("xds.mds[%d]", i)
		ps.NameIn(seen, "xds.mds", i, m.Name, "a media server name, like mds1")
		if m.Registrar == "" {
			ps.Add(key+".registrar", "required: a sip: URI like sip:10.0.0.11:5060")
		} else if !plainSIP(m.Registrar) {
			ps.Add(key+".registrar", "must be a sip: URI with a host, like sip:10.0.0.11:5060, got %q", m.Registrar)
		}
		ps.OneOf(key+".transport", m.Transport, "udp", "tcp", "tls")
		if m.TLSServerName != "" {
			switch {
			case m.Transport != "tls":
				ps.Add(key+".tls_server_name", "applies only with transport tls (transport is %q): remove it or set transport: tls", m.Transport)
			case strings.ContainsFunc(m.TLSServerName, unicode.IsSpace) || strings.ContainsAny(m.TLSServerName, "/@[]") ||
				strings.Contains(m.TLSServerName, ":") && net.ParseIP(m.TLSServerName) == nil:
				ps.Add(key+".tls_server_name", "must be a host name, like mds1.example.com, got %q", m.TLSServerName)
			}
		}
		if m.Expires < 10 || m.Expires > 3600 {
			ps.Add(key+".expires", "must be between 10 and 3600 seconds, got %d", m.Expires)
		}
		if m.User != "" && m.Password == "" {
			ps.Add(key+".password", "required when user is set")
		}
	}
}
