package agent

import (
	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/cluster"
)

// expectedMembers lists the gossip members a node admits: its peer, by
// name, role and address, and the witness, by address and role; a witness
// admits the nodes of its join list. Anyone else who holds the gossip key
// is refused, so that a forged member cannot stand in for a dead peer or
// act as the witness.
func expectedMembers(cfg *config.Config) []cluster.Expected {
	if cfg.Node.Role == config.RoleWitness {
		var out []cluster.Expected
		for _, addr := range cfg.Gossip.Join {
			out = append(out, cluster.Expected{Addr: addr, Roles: []string{config.RoleMain, config.RoleStandby}, Key: "gossip.join"})
		}
		return out
	}
	peerRole := config.RoleMain
	if cfg.Node.Role == config.RoleMain {
		peerRole = config.RoleStandby
	}
	out := []cluster.Expected{{Name: cfg.Peer.Name, Addr: cfg.Peer.Gossip, Roles: []string{peerRole}, Key: "peer.gossip"}}
	if w := cfg.Failover.Witness; w != "" {
		out = append(out, cluster.Expected{Addr: w, Roles: []string{cluster.RoleWitness}, Key: "failover.witness"})
	}
	return out
}
