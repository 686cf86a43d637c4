package metrics

import (
	"strings"

	"github.com/pocketstore/pocket/wire"
)

// ResultOK is the result label of a request that succeeded.
const ResultOK = "ok"

// CodeLabel is the label value of a wire error code: its registry name in
// snake case ("not_found", "stale_map_epoch", "io_error"), derived from
// wire.Code's String so that the registry stays the one list of names;
// CodeOK is ResultOK, and a code beyond the registry "code_N".
func CodeLabel(c wire.Code) string {
	if c == wire.CodeOK {
		return ResultOK
	}
	name := strings.ToLower(c.String())
	name = strings.ReplaceAll(name, "/", "")
	return strings.ReplaceAll(name, " ", "_")
}
