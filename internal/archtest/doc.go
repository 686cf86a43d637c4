// Package archtest holds no code: its tests check that the module keeps the
// house rules of ARCHITECTURE.md, so `make test` (go test ./...) fails when
// one breaks:
//
//   - arch_test.go: imports keep to the layers, the servers never import
//     each other, the SDK imports no server, the controller no transport,
//     and only netio, nvme and internal/sys import x/sys/unix;
//   - api_test.go: the exported API of the SDK and of the public client
//     packages names no type of an internal package;
//   - protocol_test.go: one client per plane: no file outside client and
//     metaclient both speaks wire and dials, and only the clients, the
//     servers, netio and wire read or write frames by hand.
package archtest
