// Package ca owns the cluster's identities: its root certificate
// authority, the certificates it issues to nodes and admin clients, and the
// join tokens that pin it.
//
// Every certificate names its holder in its subject: the common name is
// the node ID (or, for an admin client, the name it was issued under), the
// organizational unit is the role (shoal-manager, shoal-worker or
// shoal-admin) and the organization is the cluster ID. The node ID and the
// role come from the managers, never from the holder: a CSR only
// contributes its public key, so a private key never leaves its node.
//
// A join token is "SHOAL-1-<digest>-<secret>": the digest is the SHA-256 of
// the root certificate (base32), so a joining node can check the manager
// it talks to before it sends anything; the secret admits the node with
// the token's role. Secrets are derived from the root key and a nonce
// stored in the cluster object, and only their hash is kept beside the
// nonce, so the managers can show a token again without storing it.
//
// The package is pure: it generates and checks keys, certificates and
// tokens, and builds tls.Config values, but keeps no state of the cluster
// and makes no network calls.
package ca
