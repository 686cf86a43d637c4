// Package archtest holds no code: its test checks that the module's imports
// keep to the layers in ARCHITECTURE.md (see arch_test.go), so `make test`
// (go test ./...) fails when an import crosses them.
package archtest
