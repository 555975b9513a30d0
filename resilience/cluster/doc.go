// Package cluster is resman's membership layer in auto mode: the Main, the
// Standby and an optional witness heartbeat over hashicorp/memberlist
// gossip (SWIM with Lifeguard), encrypted with a shared key.
//
// Each member gossips a small Meta about itself (role, status, epoch,
// health and which members it sees alive). The Cluster turns memberlist's
// notifications into Events (Up, Down, Update) for the runtime, which feeds
// the decision core; Members is the current view. Membership is tracked
// from the join, leave and update notifications: memberlist's Node.State
// is not reliable in them.
//
// Gossip is encrypted with the primary key; extra keys are also accepted.
// SetKeys changes the keyring while gossip runs, for a key rotation
// without a gap; keys are only ever named by their Fingerprint.
//
// Two things memberlist does not do alone, and this package does:
//
//   - Rejoin. Two members that declared each other dead during a
//     partition never merge again by themselves (memberlist issue 222).
//     Run re-joins the configured addresses every RejoinInterval, with
//     jitter, while one of them has no alive member behind it.
//   - Refuse a wrong key visibly. memberlist drops what it cannot decrypt
//     and only logs it. Its log lines go through a bridge that warns
//     "gossip from ADDR rejected: wrong gossip.key?" and counts
//     resman_gossip_rejected_total.
//
// The own Meta.Sees is kept up to date by the Cluster: it is the witness's
// verdict. A Standby that lost the Main may activate, with a witness
// configured, only when the witness is alive and does not see the Main
// either.
//
// Package clustertest builds in-memory clusters on memberlist.MockNetwork,
// with partitions, isolation and packet loss, for tests.
package cluster
