package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	registerSub("job end", "JOBID", "end a job without its token (the operator's; for a job whose token was lost): as a deregistration, its nodes drop its data (but values put with --persist)")
}

// runJobEnd is `pocket job end JOBID`: the operator ends a job whose
// token its client lost (metaclient.Client.EndJob), proving the cluster
// secret as a drain order does. Exit 1 when the job is not live or a
// live node of its map did not drop its data.
func runJobEnd(args []string) int {
	fs := newFlagSet("job end")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $"+metaclient.EnvController+" or "+ctlDefaultAddr+")")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret, mode 0600 (default $POCKET_SECRET); the order is signed with it")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var tf tlsFlags
	tf.bind(fs)
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	key, tc, code, ok := operatorCreds("job end", *secretFile, &tf)
	if !ok {
		return code
	}
	mc, ctx, done := ctlClientWith(*addr, metaclient.Options{TLS: tc, Secret: key})
	defer done()
	res, err := mc.EndJob(ctx, pos[0])
	if err != nil {
		return fail("job end: %v%s", ctlError(err, *addr, tf.insecure), wrongSecretHint(err))
	}
	dead, others := res.Split()
	if *asJSON {
		if code := printJSON(dropView(pos[0], res)); code != 0 {
			return code
		}
	} else {
		printEnded(pos[0], res, dead)
	}
	if len(others) > 0 {
		return fail("job end: %d node(s) did not drop the job's data: %s", len(others), strings.Join(others, "; "))
	}
	return 0
}

// operatorCreds reads what an operator's order that proves the cluster
// secret needs: the secret (secretFile, else $POCKET_SECRET) and the
// operator certificate's TLS configuration (nil: plain TCP). When either
// is missing it prints why, as cmd's failure, and returns its exit code.
func operatorCreds(cmd, secretFile string, tf *tlsFlags) (key []byte, tc *tls.Config, code int, ok bool) {
	key, err := clusterSecret(secretFile)
	if err == nil {
		tc, err = tf.config(pki.RoleOperator)
	}
	if err != nil {
		return nil, nil, fail("%s: %v", cmd, err), false
	}
	return key, tc, 0, true
}

// printEnded is the text form of an operator's end of job.
func printEnded(job string, res *wire.DropResult, dead []string) {
	fmt.Printf("job %s ended by the operator: its token is revoked; %d node(s) dropped %d stored record(s) (values and the chunks of large ones), %s\n",
		job, res.Nodes, res.Values, units.FormatSize(res.Bytes))
	for _, a := range dead {
		fmt.Printf("node %s is dead: its copy of the job's values went with it, those put with --persist too\n", a)
	}
	fmt.Println("values put with --persist, if the job put any, stay on their nodes: whoever holds the job's token reads and deletes them " +
		"(pocket job credential); without it, pocket node drain --discard-persisted destroys them with the node they are on")
}

// wrongSecretHint says, for the controller's refusal of a proof of the
// cluster secret, that the secret given is not the cluster's ("" for
// other errors): the refusal's code is CodeBadToken, which a new user's
// trial of node drain read as a fault of a token.
func wrongSecretHint(err error) string {
	if errors.Is(err, wire.ErrBadToken) && strings.Contains(err.Error(), "proof does not match") {
		return " (the secret given, --secret-file or $POCKET_SECRET, is not this cluster's)"
	}
	return ""
}
