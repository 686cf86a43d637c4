package wire

// Limits bound every length a peer can announce. They are checked before
// anything is allocated or waited for.
type Limits struct {
	MaxMeta    int   // flatbuffer bytes in one frame
	MaxPayload int64 // payload bytes in one frame
	MaxJobLen  int   // job id bytes
	MaxKeyLen  int   // key bytes (also list prefixes and cursors)
	MaxToken   int   // capability token bytes
}

// Default limits. A value larger than MaxPayload is split into chunks by
// the SDK, so one frame never needs more.
const (
	DefaultMaxMeta    = 64 << 10
	DefaultMaxPayload = 64 << 20
	DefaultMaxJobLen  = 255
	DefaultMaxKeyLen  = 1024
	DefaultMaxToken   = 255
	// HardMaxPayload is the most any configuration may allow: the header's
	// payload length is 32 bits, and a node must never be told to accept
	// more than it can buffer.
	HardMaxPayload = 1 << 30
)

// DefaultLimits returns the limits a node and client use unless configured.
func DefaultLimits() Limits {
	return Limits{
		MaxMeta:    DefaultMaxMeta,
		MaxPayload: DefaultMaxPayload,
		MaxJobLen:  DefaultMaxJobLen,
		MaxKeyLen:  DefaultMaxKeyLen,
		MaxToken:   DefaultMaxToken,
	}
}
