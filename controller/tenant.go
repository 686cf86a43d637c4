package controller

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"encoding/hex"
	"iter"
	"slices"
	"strings"

	"github.com/pocketstore/pocket/wire"
)

// Tenants. Over TLS (Config.TLS) every registering peer proves a
// certificate, and a tenant is the holder of one certificate name (its
// subject's common name): a tenant's lambdas share its certificate, and a
// certificate issued again under the same name is the same tenant. A job
// registered over TLS belongs to the tenant of the certificate it was
// registered with, and its run is recorded in, and sized from, that
// tenant's profile of its name alone: another tenant registering a job of
// the same name, filling it and ending it sizes only its own next job.
// Without TLS every peer holds every role and there are no tenants: a
// name's profile is the cluster's. So are the profiles of the jobs the
// operator registers (its certificate holds the operator role): no client
// certificate, whatever its name, shares them.
//
// A profile's key (state.Profile.Name) is the job name, or the tenant's
// label and the name joined by '/' ("alice/sort"); job names have no '/'
// (checkName), so the two never meet. A label is the common name when it
// is 1 to MaxTenantLabel bytes of letters, digits, '.', '_' and '-'
// starting with a letter or digit (what `pocket cert issue --tenant`
// takes), and otherwise '~' and the first 16 hex digits of the name's
// SHA-256, a character no such name has: any key then fits a job-profile
// request (wire.DefaultMaxJobLen bytes).
const MaxTenantLabel = 20

// tenantSep joins a tenant's label and a job name in a profile key.
const tenantSep = "/"

// TenantOf is the tenant label of a verified TLS peer ("" when cs has no
// verified certificate: no tenant). A subject with other than one common
// name is labelled by the hash of the whole subject (hashLabel keeps it
// apart from any common name's): Go keeps the last of several common
// names, where other tools show the first, so a CA that signed what a
// request asked could be made to issue another tenant's name.
func TenantOf(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return ""
	}
	cert := cs.PeerCertificates[0]
	n := 0
	for _, a := range cert.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			n++
		}
	}
	if n != 1 {
		return hashLabel("subject", cert.RawSubject)
	}
	return TenantLabel(cert.Subject.CommonName)
}

// oidCommonName is the X.520 commonName attribute (2.5.4.3).
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// TenantLabel is the label of the tenant holding certificate name cn (see
// Tenants).
func TenantLabel(cn string) string {
	if len(cn) <= MaxTenantLabel && checkName(cn) == nil {
		return cn
	}
	return hashLabel("cn", []byte(cn))
}

// hashLabel is '~' and the first 16 hex digits of the SHA-256 of kind, a
// zero byte and b: a common name and a whole subject hash apart even when
// their bytes are the same (a hostile trial's T61String common name held
// another certificate's subject DER, and the two shared a label).
func hashLabel(kind string, b []byte) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(b)
	return "~" + hex.EncodeToString(h.Sum(nil)[:8])
}

// ProfileKey is the key of job name's profile for tenant (a label; ""
// without TLS).
func ProfileKey(tenant, name string) string {
	if tenant == "" {
		return name
	}
	return tenant + tenantSep + name
}

// splitKey cuts a profile key into its tenant's label ("": none) and its
// job name.
func splitKey(key string) (tenant, job string) {
	if i := strings.LastIndex(key, tenantSep); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// profileTenant is the tenant label of a profile key ("": none).
func profileTenant(key string) string {
	t, _ := splitKey(key)
	return t
}

// CheckProfileArg accepts what names a profile: a job name (checkName),
// or a tenant's label and a job name joined by '/'.
func CheckProfileArg(arg string) error {
	i := strings.LastIndex(arg, tenantSep)
	if i < 0 {
		return checkName(arg)
	}
	if t := arg[:i]; !validLabel(t) {
		return wire.Errorf(wire.CodeBadKey, "profile %q: %q is not a tenant's label (a certificate name of up to %d letters, digits, '.', '_' and '-', or '~' and 16 lowercase hex digits)",
			arg, t, MaxTenantLabel)
	}
	if arg[i+1:] == "" {
		return wire.Errorf(wire.CodeBadKey, "profile %q: no job name after the tenant's label", arg)
	}
	return checkName(arg[i+1:])
}

// validLabel reports whether t is a label TenantLabel can give.
func validLabel(t string) bool {
	if h, ok := strings.CutPrefix(t, "~"); ok {
		_, err := hex.DecodeString(h)
		return len(h) == 16 && err == nil && strings.ToLower(h) == h
	}
	return len(t) <= MaxTenantLabel && checkName(t) == nil
}

// MatchProfile is the profile key that arg (a key, or a bare job name)
// names among keys: arg itself when it is one; else, for a bare job name,
// the one tenant's key of that name. Otherwise it returns "" and the
// tenants' keys of the name, sorted (none: no profile; several: the
// caller must say whose).
func MatchProfile(arg string, keys iter.Seq[string]) (string, []string) {
	var theirs []string
	bare := !strings.Contains(arg, tenantSep)
	for k := range keys {
		if k == arg {
			return k, nil
		}
		if t, job := splitKey(k); bare && t != "" && job == arg {
			theirs = append(theirs, k)
		}
	}
	if len(theirs) == 1 {
		return theirs[0], nil
	}
	slices.Sort(theirs)
	return "", theirs
}
