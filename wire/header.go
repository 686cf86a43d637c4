package wire

import (
	"encoding/binary"
	"fmt"
)

// Header constants. Part of the format (see the package doc).
const (
	HeaderLen = 24
	Magic0    = 'P'
	Magic1    = 'K'
	Version   = 1
	// ReplyBit is set in the opcode of every reply.
	ReplyBit = 0x80
)

// Op is a frame's opcode. Data-plane ops are 1..0x3F; control-plane ops
// 0x40..0x7F; the high bit marks replies. Numbers are stable.
type Op uint8

// Data-plane opcodes.
const (
	OpPing    Op = 0x01 // liveness; reply has no body
	OpPut     Op = 0x02 // store the payload under Request.key
	OpGet     Op = 0x03 // reply payload is the value
	OpDelete  Op = 0x04 // remove a key
	OpStat    Op = 0x05 // reply Response.size and flags
	OpList    Op = 0x06 // reply Response.entries
	OpDropJob Op = 0x07 // delete all of a job's values (controller only)
	OpUsage   Op = 0x08 // reply Response.size (the job's bytes) and capacity (the tier's)
	// OpConfirm ends the lease of the chunks of Request.version the node
	// holds (see objects.go); the reply's Response.count is how many.
	OpConfirm Op = 0x09
	// OpDropVersion deletes every chunk of Request.version the node
	// holds; the reply's Response.count is how many.
	OpDropVersion Op = 0x0A
	// OpIncarnation asks the node serving at an address which process it
	// is: the reply's Response.incarnation is the node's incarnation
	// (dataplane.Node.Incarnation) and Response.proof the node's proof of
	// the cluster secret over it and Request.key, a nonce the asker chose
	// (token.IncarnationProof). The controller asks before it believes a
	// registration that says a known node restarted.
	OpIncarnation Op = 0x0B
	// OpVersions is the controller's order (token.OrderProof, as
	// OpDropJob's) asking which object versions of the ended job
	// Request.job the node holds, on every tier: with FlagManifest those
	// its manifests name, else those of its confirmed chunks (a leased
	// version is the chunk lease's to reclaim). The reply's
	// Response.versions is a page of them in ascending order, after the
	// version packed in Request.after (PackVersions; empty: from the
	// first), at most MaxVersionsPage, with Response.more set when more
	// follow. A job still live on the node, or one whose puts are still
	// committing, is refused (CodeConflict, CodeBusy). The controller
	// sweeps an ended job's chunks that no manifest names with it
	// (controller/sweep.go).
	OpVersions Op = 0x0C
	// OpDropVersions is the controller's order to delete the chunks of
	// the ended job's confirmed versions packed in Request.after (at most
	// MaxDropVersions), on every tier; the order's proof binds them
	// (token.Order.Carried). The reply's Response.count is the chunks
	// deleted and Response.size the bytes freed. Refused as OpVersions is.
	OpDropVersions Op = 0x0D
)

// Bounds of the controller's version orders: a page of OpVersions (8
// bytes a version, well inside DefaultMaxMeta) and the versions one
// OpDropVersions carries (they fit a key's length, DefaultMaxKeyLen).
const (
	MaxVersionsPage = 4096
	MaxDropVersions = DefaultMaxKeyLen / 8
)

// ControlBase is the first control-plane opcode; control messages are
// defined beside the control schema.
const ControlBase Op = 0x40

var opNames = map[Op]string{
	OpPing: "ping", OpPut: "put", OpGet: "get", OpDelete: "delete",
	OpStat: "stat", OpList: "list", OpDropJob: "drop-job", OpUsage: "usage",
	OpConfirm: "confirm", OpDropVersion: "drop-version", OpIncarnation: "incarnation",
	OpVersions: "versions", OpDropVersions: "drop-versions",
}

// RegisterOpName names a control opcode for messages and logs; called from
// init functions of the packages that define control ops.
func RegisterOpName(op Op, name string) { opNames[op] = name }

func (o Op) String() string {
	if n, ok := opNames[o&^ReplyBit]; ok {
		if o&ReplyBit != 0 {
			return n + "-reply"
		}
		return n
	}
	return fmt.Sprintf("op(%#x)", uint8(o))
}

// IsReply reports whether the opcode is a reply's.
func (o Op) IsReply() bool { return o&ReplyBit != 0 }

// Reply returns the opcode of the reply to o.
func (o Op) Reply() Op { return o | ReplyBit }

// Header flags (requests).
const (
	// FlagPersist keeps a put value after its job is deregistered.
	FlagPersist uint16 = 1 << 0
	// FlagDeleteAfterRead deletes a value once a get has read it.
	FlagDeleteAfterRead uint16 = 1 << 1
	// FlagTierNVMe routes the request to the node's NVMe tier (the job's
	// placement map names its tier); without it the DRAM tier serves.
	FlagTierNVMe uint16 = 1 << 2
	// FlagManifest marks a stored value as the manifest of a chunked
	// object (see package pocket); nodes store it like any flag bit and
	// return it in the get reply's flags.
	FlagManifest uint16 = 1 << 3
	// FlagPrefix makes a delete remove every key that starts with the
	// request's key (recursive delete of a directory), and a drop-job
	// remove persistent values too.
	FlagPrefix uint16 = 1 << 4
	// FlagChunk marks a put as one chunk of the object version named by
	// Request.version (see objects.go); the node keeps the bit with the
	// value and files the key under the version.
	FlagChunk uint16 = 1 << 5
	// FlagLease makes a chunk put leased: the node deletes the chunk if
	// no OpConfirm for its version arrives within the node's chunk lease.
	FlagLease uint16 = 1 << 6
	// FlagIfAbsent makes a put conditional: it stores nothing and answers
	// CodeExists when the key already holds a value.
	FlagIfAbsent uint16 = 1 << 7
	// FlagIfVersion makes a delete conditional: it removes the value only
	// when its version is Request.version, else answers CodeConflict.
	FlagIfVersion uint16 = 1 << 8
	// FlagVersion asks a get to return the value's version in the reply's
	// metadata (Response.version), for a later conditional delete.
	FlagVersion uint16 = 1 << 9
	// StoredFlags are the bits a node keeps with a value and returns in
	// the flags of a get reply.
	StoredFlags = FlagPersist | FlagManifest | FlagChunk
)

// Header is a decoded frame header.
type Header struct {
	Op         Op
	Flags      uint16
	Code       Code
	ID         uint64
	MetaLen    uint32
	PayloadLen uint32
}

// FrameLen is the whole frame's length: header, metadata and payload.
func (h *Header) FrameLen() int64 {
	return HeaderLen + int64(h.MetaLen) + int64(h.PayloadLen)
}

// PutHeader writes h into b[:HeaderLen]; b must be at least HeaderLen long.
func PutHeader(b []byte, h *Header) {
	_ = b[HeaderLen-1]
	b[0], b[1], b[2], b[3] = Magic0, Magic1, Version, byte(h.Op)
	binary.LittleEndian.PutUint16(b[4:], h.Flags)
	binary.LittleEndian.PutUint16(b[6:], uint16(h.Code))
	binary.LittleEndian.PutUint64(b[8:], h.ID)
	binary.LittleEndian.PutUint32(b[16:], h.MetaLen)
	binary.LittleEndian.PutUint32(b[20:], h.PayloadLen)
}

// AppendHeader appends h's encoding to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	PutHeader(dst[n:], h)
	return dst
}

// ParseHeader decodes the header at the start of b and checks it against
// lim. b must hold at least HeaderLen bytes (ErrShortHeader otherwise, which
// means "wait for more bytes", not a protocol error). Every other error is a
// protocol violation and is an *Error with a Code.
func ParseHeader(b []byte, lim *Limits) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, ErrShortHeader
	}
	if b[0] != Magic0 || b[1] != Magic1 {
		return h, errBadMagic
	}
	if b[2] != Version {
		return h, errBadVersion
	}
	h.Op = Op(b[3])
	h.Flags = binary.LittleEndian.Uint16(b[4:])
	h.Code = Code(binary.LittleEndian.Uint16(b[6:]))
	h.ID = binary.LittleEndian.Uint64(b[8:])
	h.MetaLen = binary.LittleEndian.Uint32(b[16:])
	h.PayloadLen = binary.LittleEndian.Uint32(b[20:])
	if int64(h.MetaLen) > int64(lim.MaxMeta) {
		return h, errMetaTooLarge
	}
	if int64(h.PayloadLen) > lim.MaxPayload {
		return h, errPayloadTooLarge
	}
	return h, nil
}
