package pki

import (
	"fmt"
	"os"
	"strconv"
)

// The environment of a control-plane client's TLS settings, read by the
// CLI and the Go SDK (the Python SDK reads the same names).
const (
	// EnvTLSDir names a directory holding ca.pem and a member's
	// certificate (ROLE.pem, ROLE-key.pem), as `pocket up` prints it.
	EnvTLSDir = "POCKET_TLS_DIR"
	// EnvInsecure, set to 1 (or true), asks for plain TCP to the
	// controller, as the CLI's --insecure and the SDKs' Insecure option;
	// a TLS directory or configuration given explicitly wins over it.
	// `pocket up --insecure` prints it. Before, every command against such
	// a cluster needed --insecure (a new user's trial).
	EnvInsecure = "POCKET_INSECURE"
)

// InsecureFromEnv reports whether $POCKET_INSECURE asks for plain TCP
// (strconv.ParseBool's words; unset or empty: no), or why it cannot be
// taken: a word it does not know, or $POCKET_TLS_DIR set beside it.
func InsecureFromEnv() (bool, error) {
	v := os.Getenv(EnvInsecure)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("$%s=%q: want 1 or true (plain TCP), or 0 or false", EnvInsecure, v)
	}
	if b && os.Getenv(EnvTLSDir) != "" {
		return false, fmt.Errorf("$%s and $%s are both set: unset one, or give the TLS choice explicitly", EnvInsecure, EnvTLSDir)
	}
	return b, nil
}
